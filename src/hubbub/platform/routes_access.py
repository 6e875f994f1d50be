"""Access and moderation for every user: the server's sign-up rules, registration invites, join links and
requests, the public group directory, and reports (docs/protocol.md, "Registration and invites", "Join
links and the group directory", "Reports"). The rules are in services/access.py, joins.py, reports.py."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from hubbub.core.ids import MAX_ID
from hubbub.engines.storage.base_access import GroupLink, Invite, JoinRequest, Report
from hubbub.platform.limits import CLIENT_IP
from hubbub.platform.routing import Ctx, route
from hubbub.services.admin import Actor
from hubbub.services.joins import GroupCard, JoinResult, LinkCard

Code_ = Annotated[str, Meta(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class ServerInfo(msgspec.Struct):
    #: open, invite or closed (docs/operations.md, "Registration and invites").
    registration: str
    #: Users may create invites (not only admins).
    user_invites: bool


class MyAccess(msgspec.Struct):
    #: The caller is a server administrator: the console (``/admin``) is theirs.
    admin: bool
    #: The caller may create registration invites.
    can_invite: bool


class InviteBody(msgspec.Struct, kw_only=True):
    max_uses: Annotated[int, Meta(ge=1, le=10_000)] = 1
    #: Seconds until it expires; 0: never.
    ttl_s: Annotated[int, Meta(ge=0, le=365 * 24 * 3600)] = 7 * 24 * 3600
    note: Annotated[str, Meta(max_length=256)] = ""


class InviteList(msgspec.Struct):
    invites: list[Invite]


class LinkBody(msgspec.Struct, kw_only=True):
    #: 0: no limit.
    max_uses: Annotated[int, Meta(ge=0, le=100_000)] = 0
    #: Seconds until it expires; 0: never.
    ttl_s: Annotated[int, Meta(ge=0, le=365 * 24 * 3600)] = 0


class LinkList(msgspec.Struct):
    links: list[GroupLink]


class Directory(msgspec.Struct):
    groups: list[GroupCard]
    next_after: int | None


class RequestList(msgspec.Struct):
    requests: list[JoinRequest]


class ReportBody(msgspec.Struct, kw_only=True):
    kind: Literal["message", "user", "group"]
    #: ``<conv>:<seq>`` for a message (e.g. ``g:12:40``), the user's or the group's id otherwise.
    target: Annotated[str, Meta(min_length=1, max_length=64)]
    reason: Annotated[str, Meta(min_length=1, max_length=1024)]


class ReportList(msgspec.Struct):
    reports: list[Report]


@route(
    "GET",
    "/api/v1/server",
    summary="The server's sign-up rules (before logging in)",
    response=ServerInfo,
    auth=False,
    tag="access",
)
async def server_info(ctx: Ctx) -> ServerInfo:
    info = await ctx.s.access.public_info()
    return ServerInfo(registration=info["registration"], user_invites=info["user_invites"])


@route(
    "GET",
    "/api/v1/me/access",
    summary="Whether I am an admin and may invite",
    response=MyAccess,
    tag="access",
)
async def my_access(ctx: Ctx) -> MyAccess:
    record = await ctx.s.storage.user_record(ctx.me)
    admin = record is not None and record.is_admin and not record.banned
    settings = await ctx.s.access.settings()
    return MyAccess(admin=admin, can_invite=admin or settings.user_invites)


# -- registration invites -----------------------------------------------------------------------
@route(
    "POST",
    "/api/v1/invites",
    summary="Create a registration invite (when the server lets users invite)",
    body=InviteBody,
    response=Invite,
    status=201,
    tag="access",
)
async def create_invite(ctx: Ctx) -> Invite:
    """Users may when the server allows it; a server admin always may (and is audited, as in the console)."""
    b: InviteBody = ctx.body
    record = await ctx.s.storage.user_record(ctx.me)
    admin = record is not None and record.is_admin and not record.banned
    invite = await ctx.s.access.create_invite(
        ctx.me, max_uses=b.max_uses, ttl_s=b.ttl_s, note=b.note, admin=admin
    )
    if admin:
        address = str(ctx.request.get(CLIENT_IP) or ctx.request.remote or "")
        await ctx.s.admin.audit(Actor(ctx.me, address), "invite.create", f"invite:{invite.code}")
    return invite


@route("GET", "/api/v1/invites", summary="My registration invites", response=InviteList, tag="access")
async def my_invites(ctx: Ctx) -> InviteList:
    return InviteList(invites=await ctx.s.access.invites(ctx.me, ctx.request.query.get("after", "")[:32]))


@route("DELETE", "/api/v1/invites/{code}", summary="Revoke one of my invites", status=204, tag="access")
async def revoke_my_invite(ctx: Ctx) -> None:
    await ctx.s.access.revoke_invite(ctx.request.match_info["code"], ctx.me)


# -- join links, requests, directory --------------------------------------------------------------
@route(
    "GET",
    "/api/v1/groups/directory",
    summary="Public groups, searchable by name",
    response=Directory,
    query={
        "q": "name prefix (or a word's)",
        "after": "group id to start after",
        "limit": "1-100, default 50",
    },
    tag="access",
)
async def directory(ctx: Ctx) -> Directory:
    limit = ctx.query_int("limit", 50, 1, 100) or 50
    found = await ctx.s.joins.directory(
        ctx.request.query.get("q", ""), ctx.query_seq("after", MAX_ID) or 0, limit
    )
    return Directory(groups=found, next_after=found[-1].id if len(found) == limit else None)


@route(
    "POST",
    "/api/v1/groups/{group_id}/join",
    summary="Join a public group (or ask to, when it needs approval)",
    response=JoinResult,
    tag="access",
)
async def join_public(ctx: Ctx) -> JoinResult:
    return await ctx.s.joins.join_public(ctx.me, ctx.path_int("group_id"))


@route(
    "GET",
    "/api/v1/groups/{group_id}/links",
    summary="The group's live join links",
    response=LinkList,
    tag="access",
)
async def links(ctx: Ctx) -> LinkList:
    return LinkList(links=await ctx.s.joins.links(ctx.me, ctx.path_int("group_id")))


@route(
    "POST",
    "/api/v1/groups/{group_id}/links",
    summary="Create a join link (owner/admins), optionally expiring and use-limited",
    body=LinkBody,
    response=GroupLink,
    status=201,
    tag="access",
)
async def create_link(ctx: Ctx) -> GroupLink:
    b: LinkBody = ctx.body
    return await ctx.s.joins.create_link(ctx.me, ctx.path_int("group_id"), b.max_uses, b.ttl_s)


@route(
    "DELETE",
    "/api/v1/groups/{group_id}/links/{code}",
    summary="Revoke a join link (owner/admins)",
    status=204,
    tag="access",
)
async def revoke_link(ctx: Ctx) -> None:
    await ctx.s.joins.revoke_link(ctx.me, ctx.path_int("group_id"), ctx.request.match_info["code"])


@route(
    "GET",
    "/api/v1/links/{code}",
    summary="The group a join link opens (its card)",
    response=LinkCard,
    tag="access",
)
async def link_card(ctx: Ctx) -> LinkCard:
    return await ctx.s.joins.preview(ctx.me, ctx.request.match_info["code"])


@route(
    "POST",
    "/api/v1/links/{code}/join",
    summary="Join by link (or ask to, when the group needs approval)",
    response=JoinResult,
    tag="access",
)
async def join_by_link(ctx: Ctx) -> JoinResult:
    return await ctx.s.joins.join_by_link(ctx.me, ctx.request.match_info["code"])


@route(
    "GET",
    "/api/v1/groups/{group_id}/requests",
    summary="Pending requests to join (owner/admins)",
    response=RequestList,
    tag="access",
)
async def join_requests(ctx: Ctx) -> RequestList:
    return RequestList(requests=await ctx.s.joins.requests(ctx.me, ctx.path_int("group_id")))


@route(
    "POST",
    "/api/v1/groups/{group_id}/requests/{request_id}/approve",
    summary="Approve a request to join: the requester joins (owner/admins)",
    response=JoinRequest,
    tag="access",
)
async def approve(ctx: Ctx) -> JoinRequest:
    return await ctx.s.joins.answer(ctx.me, ctx.path_int("group_id"), ctx.path_int("request_id"), True)


@route(
    "POST",
    "/api/v1/groups/{group_id}/requests/{request_id}/decline",
    summary="Decline a request to join (owner/admins)",
    response=JoinRequest,
    tag="access",
)
async def decline(ctx: Ctx) -> JoinRequest:
    return await ctx.s.joins.answer(ctx.me, ctx.path_int("group_id"), ctx.path_int("request_id"), False)


# -- reports --------------------------------------------------------------------------------------
@route(
    "POST",
    "/api/v1/reports",
    summary="Report a message, a user or a group to the server's admins",
    body=ReportBody,
    response=Report,
    status=201,
    tag="access",
)
async def report(ctx: Ctx) -> Report:
    b: ReportBody = ctx.body
    return await ctx.s.reports.report(ctx.me, b.kind, b.target, b.reason)


@route(
    "GET",
    "/api/v1/reports",
    summary="My reports and their outcome",
    response=ReportList,
    query={"before": "report id to continue below"},
    tag="access",
)
async def my_reports(ctx: Ctx) -> ReportList:
    return ReportList(reports=await ctx.s.reports.mine(ctx.me, ctx.query_int("before", 0) or 0))
