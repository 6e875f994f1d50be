"""Issue 15: blocks, remarks, last-seen privacy, profiles as I see them, chat preferences and the sessions
list (docs/protocol.md, "Sessions, profiles, blocking and chat preferences")."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from hubbub.engines.storage.base_social import ChatPrefs, ChatPrefsChange
from hubbub.platform.routing import Ctx, route
from hubbub.services.social import Blocked, Privacy, Profile, SessionInfo


class BlockList(msgspec.Struct):
    blocks: list[Blocked]


class RemarkBody(msgspec.Struct, kw_only=True):
    #: Cleaned and checked by the service (at most 64 characters once format characters are removed).
    remark: Annotated[str, Meta(max_length=256)]


class RemarkResult(msgspec.Struct):
    user: int
    remark: str


class PrivacyBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    last_seen: Literal["everyone", "friends", "nobody"] | None = None


class PrefsList(msgspec.Struct):
    prefs: list[ChatPrefs]


class SessionList(msgspec.Struct):
    sessions: list[SessionInfo]


class Ended(msgspec.Struct):
    ended: int


# -- blocks ------------------------------------------------------------------------------------------
@route("GET", "/api/v1/blocks", summary="The users I block, newest first", response=BlockList, tag="social")
async def blocks(ctx: Ctx) -> BlockList:
    return BlockList(blocks=await ctx.s.social.blocks(ctx.me))


@route(
    "PUT",
    "/api/v1/blocks/{user_id}",
    summary="Block a user: no private message, friend request, call or presence between us",
    response=Blocked,
    tag="social",
)
async def block(ctx: Ctx) -> Blocked:
    return await ctx.s.social.block(ctx.me, ctx.path_int("user_id"))


@route("DELETE", "/api/v1/blocks/{user_id}", summary="Unblock a user", status=204, tag="social")
async def unblock(ctx: Ctx) -> None:
    await ctx.s.social.unblock(ctx.me, ctx.path_int("user_id"))


# -- profiles, remarks, privacy -------------------------------------------------------------------------
@route(
    "GET",
    "/api/v1/users/{user_id}/profile",
    summary="A user as I see them: remark, friendship, blocks, presence and last seen",
    response=Profile,
    tag="social",
)
async def profile(ctx: Ctx) -> Profile:
    return await ctx.s.social.profile(ctx.me, ctx.path_int("user_id"))


@route(
    "PUT",
    "/api/v1/contacts/{user_id}/remark",
    summary="Set my private remark (alias) for a user; empty clears it",
    body=RemarkBody,
    response=RemarkResult,
    tag="social",
)
async def set_remark(ctx: Ctx) -> RemarkResult:
    target = ctx.path_int("user_id")
    return RemarkResult(user=target, remark=await ctx.s.social.set_remark(ctx.me, target, ctx.body.remark))


@route("GET", "/api/v1/me/privacy", summary="My privacy settings", response=Privacy, tag="social")
async def privacy(ctx: Ctx) -> Privacy:
    return await ctx.s.social.privacy(ctx.me)


@route(
    "PATCH",
    "/api/v1/me/privacy",
    summary="Change who sees my last seen: everyone, friends or nobody",
    body=PrivacyBody,
    response=Privacy,
    tag="social",
)
async def set_privacy(ctx: Ctx) -> Privacy:
    if ctx.body.last_seen is None:
        return await ctx.s.social.privacy(ctx.me)
    return await ctx.s.social.set_privacy(ctx.me, ctx.body.last_seen)


# -- chat preferences ---------------------------------------------------------------------------------
@route(
    "GET",
    "/api/v1/me/chat_prefs",
    summary="My chat preferences (pinned, muted, archived, marked unread) for chats that have any",
    response=PrefsList,
    tag="social",
)
async def chat_prefs(ctx: Ctx) -> PrefsList:
    return PrefsList(prefs=await ctx.s.social.chat_prefs(ctx.me))


@route(
    "PATCH",
    "/api/v1/conversations/{conv}/prefs",
    summary="Pin, mute, archive or mark a chat unread; pushed to all my sessions",
    body=ChatPrefsChange,
    response=ChatPrefs,
    tag="social",
)
async def set_chat_prefs(ctx: Ctx) -> ChatPrefs:
    return await ctx.s.social.set_prefs(ctx.me, ctx.path_conv(), ctx.body)


# -- sessions -----------------------------------------------------------------------------------------
@route("GET", "/api/v1/me/sessions", summary="My live logins", response=SessionList, tag="social")
async def sessions(ctx: Ctx) -> SessionList:
    assert ctx.principal is not None
    return SessionList(sessions=await ctx.s.social.sessions(ctx.me, ctx.principal.sid))


@route(
    "DELETE",
    "/api/v1/me/sessions/{session_id}",
    summary="End one of my sessions (its sockets close with 4403)",
    status=204,
    tag="social",
)
async def end_session(ctx: Ctx) -> None:
    sid = ctx.request.match_info["session_id"]
    await ctx.s.social.end_session(ctx.me, sid[:64])


@route(
    "POST",
    "/api/v1/me/sessions/logout_others",
    summary="End every session but this one",
    response=Ended,
    tag="social",
)
async def logout_others(ctx: Ctx) -> Ended:
    assert ctx.principal is not None
    return Ended(ended=await ctx.s.social.end_other_sessions(ctx.me, ctx.principal.sid))
