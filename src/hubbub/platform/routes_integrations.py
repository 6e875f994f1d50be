"""Integrations over HTTP (docs/integrations.md): bots and their tokens, incoming and outgoing webhooks,
and OpenID Connect sign-in."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

import msgspec
from aiohttp import web
from msgspec import Meta

from hubbub.core.convs import ConvField, validate
from hubbub.core.errors import Code, HubbubError, not_found
from hubbub.core.ids import IdField
from hubbub.core.models import Ack, Tokens
from hubbub.engines.storage.base_integrations import Bot, BotToken, Delivery, IncomingHook, OutgoingHook
from hubbub.platform.routing import Ctx, route
from hubbub.services.webhooks import IncomingPost

Name = Annotated[str, Meta(max_length=64)]


# -- bots ---------------------------------------------------------------------------------------------
class BotBody(msgspec.Struct, kw_only=True):
    username: Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]{3,32}$")]
    nickname: Annotated[str, Meta(min_length=1, max_length=64)] | None = None


class BotList(msgspec.Struct):
    bots: list[Bot]


class TokenBody(msgspec.Struct, kw_only=True):
    #: Any of "send", "read", "profile".
    scopes: Annotated[list[Annotated[str, Meta(max_length=16)]], Meta(min_length=1, max_length=3)]
    name: Name = ""


class IssuedToken(msgspec.Struct):
    token: BotToken
    #: The bearer token itself: shown this once, stored only hashed.
    secret: str


class TokenList(msgspec.Struct):
    tokens: list[BotToken]


@route(
    "POST",
    "/api/v1/bots",
    summary="Create a bot account you own",
    body=BotBody,
    response=Bot,
    status=201,
    tag="bots",
)
async def create_bot(ctx: Ctx) -> Bot:
    b: BotBody = ctx.body
    return await ctx.s.bots.create(ctx.me, b.username, b.nickname)


@route("GET", "/api/v1/bots", summary="The bots you own", response=BotList, tag="bots")
async def my_bots(ctx: Ctx) -> BotList:
    return BotList(await ctx.s.bots.mine(ctx.me))


@route("GET", "/api/v1/admin/bots", summary="Every bot on the server (admins)", response=BotList, tag="admin")
async def all_bots(ctx: Ctx) -> BotList:
    return BotList(await ctx.s.storage.bots(None))


@route(
    "POST",
    "/api/v1/bots/{bot_id}/tokens",
    summary="Issue a scoped token of a bot you own (the secret is shown once)",
    body=TokenBody,
    response=IssuedToken,
    status=201,
    tag="bots",
)
async def issue_token(ctx: Ctx) -> IssuedToken:
    b: TokenBody = ctx.body
    token, secret = await ctx.s.bots.issue_token(ctx.me, ctx.path_int("bot_id"), b.scopes, b.name)
    return IssuedToken(token, secret)


@route("GET", "/api/v1/bots/{bot_id}/tokens", summary="A bot's tokens", response=TokenList, tag="bots")
async def bot_tokens(ctx: Ctx) -> TokenList:
    return TokenList(await ctx.s.bots.tokens(ctx.me, ctx.path_int("bot_id")))


@route(
    "DELETE",
    "/api/v1/bots/{bot_id}/tokens/{token_id}",
    summary="Revoke a bot token (its sockets are closed)",
    status=204,
    tag="bots",
)
async def revoke_token(ctx: Ctx) -> None:
    await ctx.s.bots.revoke_token(ctx.me, ctx.path_int("bot_id"), ctx.path_int("token_id"))


# -- incoming webhooks --------------------------------------------------------------------------------
class IncomingBody(msgspec.Struct, kw_only=True):
    conv: ConvField
    bot_id: IdField
    name: Name = ""


class CreatedIncoming(msgspec.Struct):
    hook: IncomingHook
    #: The secret path to POST to: whoever knows it posts as the bot.
    url: str


class IncomingList(msgspec.Struct):
    hooks: list[IncomingHook]


@route(
    "POST",
    "/api/v1/webhooks/incoming",
    summary="Create an incoming webhook posting into a conversation as a bot you own",
    body=IncomingBody,
    response=CreatedIncoming,
    status=201,
    tag="webhooks",
)
async def create_incoming(ctx: Ctx) -> CreatedIncoming:
    b: IncomingBody = ctx.body
    hook, token = await ctx.s.incoming_hooks.create(ctx.me, validate(b.conv), b.bot_id, b.name)
    return CreatedIncoming(hook, f"/api/v1/hooks/{token}")


@route(
    "GET",
    "/api/v1/webhooks/incoming",
    summary="Your incoming webhooks",
    response=IncomingList,
    tag="webhooks",
)
async def list_incoming(ctx: Ctx) -> IncomingList:
    return IncomingList(await ctx.s.storage.incoming_hooks(ctx.me))


@route(
    "DELETE",
    "/api/v1/webhooks/incoming/{hook_id}",
    summary="Revoke an incoming webhook",
    status=204,
    tag="webhooks",
)
async def revoke_incoming(ctx: Ctx) -> None:
    if not await ctx.s.storage.revoke_incoming_hook(ctx.me, ctx.path_int("hook_id")):
        raise not_found("webhook")


@route(
    "POST",
    "/api/v1/hooks/{code}",
    summary="Post through an incoming webhook (the path is its secret; idempotent on client_id)",
    body=IncomingPost,
    response=Ack,
    auth=False,
    tag="webhooks",
)
async def post_incoming(ctx: Ctx) -> Ack:
    return await ctx.s.incoming_hooks.post(ctx.request.match_info["code"], ctx.body)


# -- outgoing webhooks --------------------------------------------------------------------------------
class OutgoingBody(msgspec.Struct, kw_only=True):
    conv: ConvField
    url: Annotated[str, Meta(max_length=2048)]
    #: Any of "message", "mention", "member".
    events: Annotated[list[Annotated[str, Meta(max_length=16)]], Meta(min_length=1, max_length=3)]
    #: For "mention": the bot (one you own) whose mentions are delivered.
    bot_id: IdField | None = None


class OutgoingList(msgspec.Struct):
    hooks: list[OutgoingHook]


class DeliveryList(msgspec.Struct):
    deliveries: list[Delivery]


@route(
    "POST",
    "/api/v1/webhooks/outgoing",
    summary="Subscribe a URL to a conversation's events (signed deliveries)",
    body=OutgoingBody,
    response=OutgoingHook,
    status=201,
    tag="webhooks",
)
async def create_outgoing(ctx: Ctx) -> OutgoingHook:
    b: OutgoingBody = ctx.body
    return await ctx.s.outgoing_hooks.create(ctx.me, validate(b.conv), b.url, b.events, b.bot_id)


@route(
    "GET",
    "/api/v1/webhooks/outgoing",
    summary="Your outgoing webhooks",
    response=OutgoingList,
    tag="webhooks",
)
async def list_outgoing(ctx: Ctx) -> OutgoingList:
    return OutgoingList(await ctx.s.storage.outgoing_hooks(ctx.me))


@route(
    "DELETE",
    "/api/v1/webhooks/outgoing/{hook_id}",
    summary="Delete an outgoing webhook",
    status=204,
    tag="webhooks",
)
async def delete_outgoing(ctx: Ctx) -> None:
    await ctx.s.outgoing_hooks.delete(ctx.me, ctx.path_int("hook_id"))


@route(
    "POST",
    "/api/v1/webhooks/outgoing/{hook_id}/enable",
    summary="Enable a disabled webhook again (it resumes where it stopped)",
    response=OutgoingHook,
    tag="webhooks",
)
async def enable_outgoing(ctx: Ctx) -> OutgoingHook:
    return await ctx.s.outgoing_hooks.enable(ctx.me, ctx.path_int("hook_id"))


@route(
    "GET",
    "/api/v1/webhooks/outgoing/{hook_id}/deliveries",
    summary="A webhook's last delivery attempts, newest first",
    response=DeliveryList,
    query={"limit": "1-50, default 20"},
    tag="webhooks",
)
async def deliveries(ctx: Ctx) -> DeliveryList:
    limit = ctx.query_int("limit", 20, 1, 50) or 20
    return DeliveryList(await ctx.s.outgoing_hooks.deliveries(ctx.me, ctx.path_int("hook_id"), limit))


# -- OpenID Connect -----------------------------------------------------------------------------------
class Provider(msgspec.Struct):
    id: str
    name: str
    #: Open this URL in the browser to sign in.
    start: str


class ProviderList(msgspec.Struct):
    providers: list[Provider]


class TicketBody(msgspec.Struct, kw_only=True):
    ticket: Annotated[str, Meta(min_length=1, max_length=128)]


def _redirect_uri(ctx: Ctx) -> str:
    base = ctx.s.config.public_url.rstrip("/") or f"{ctx.request.scheme}://{ctx.request.host}"
    return f"{base}/api/v1/auth/oidc/callback"


@route(
    "GET",
    "/api/v1/auth/oidc/providers",
    summary="Single sign-on providers for the login page",
    response=ProviderList,
    auth=False,
    tag="auth",
)
async def providers(ctx: Ctx) -> ProviderList:
    return ProviderList([Provider(**p) for p in ctx.s.oidc.providers()])


@route(
    "GET",
    "/api/v1/auth/oidc/start",
    summary="Start a single sign-on: redirects (302) to the provider",
    status=302,
    auth=False,
    tag="auth",
)
async def oidc_start(ctx: Ctx) -> web.StreamResponse:
    raise web.HTTPFound(await ctx.s.oidc.start(_redirect_uri(ctx)))


@route(
    "GET",
    "/api/v1/auth/oidc/callback",
    summary="The provider's redirect back: redirects (302) to the web client with a one-time ticket",
    status=302,
    auth=False,
    query={
        "state": "the sign-in's state",
        "code": "the authorization code",
        "error": "the provider's refusal",
    },
    tag="auth",
)
async def oidc_callback(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    try:
        if q.get("error"):
            raise HubbubError(Code.UNAUTHORIZED, f"the provider refused: {q['error'][:100]}")
        ticket = await ctx.s.oidc.callback(q.get("state", ""), q.get("code", ""))
    except HubbubError as exc:
        raise web.HTTPFound("/?" + urlencode({"sso_error": exc.message})) from exc
    raise web.HTTPFound("/?" + urlencode({"sso_ticket": ticket}))


@route(
    "POST",
    "/api/v1/auth/oidc/exchange",
    summary="Exchange a single sign-on ticket (once, within two minutes) for tokens",
    body=TicketBody,
    response=Tokens,
    auth=False,
    tag="auth",
)
async def oidc_exchange(ctx: Ctx) -> Tokens:
    return await ctx.s.oidc.exchange(ctx.body.ticket)
