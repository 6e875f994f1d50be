"""Server administration over HTTP (``/api/v1/admin/*``): for users with ``is_admin`` only, others get 403
``forbidden``. The same operations as ``hubbub admin`` (services/admin.py; docs/operations.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.core.ids import MAX_ID, IdField
from hubbub.core.models import Group, GroupMember
from hubbub.engines.cluster.base import NodeLoad
from hubbub.engines.storage.base import UserRecord
from hubbub.engines.storage.base_access import AuditEntry, AuditQuery, Invite, Report
from hubbub.metrics import NodeMetrics
from hubbub.platform.limits import CLIENT_IP
from hubbub.platform.routing import Ctx, route
from hubbub.proof.trace import Timeline
from hubbub.services.access import ServerSettings
from hubbub.services.admin import Actor

#: The node's metrics (platform/app.py sets it): the dashboard reads the providers ``/metrics`` reads.
METRICS_KEY = web.AppKey("metrics", NodeMetrics)
Reason = Annotated[str, Meta(max_length=1024)]

UserId = IdField
Word = Annotated[str, Meta(min_length=1, max_length=64)]


class CreateUserBody(msgspec.Struct, kw_only=True):
    username: Annotated[str, Meta(min_length=3, max_length=32)]
    password: Annotated[str, Meta(min_length=8, max_length=256)]
    nickname: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    admin: bool = False
    #: A delivery canary's account (hidden from user search; see ``hubbub canary``).
    canary: bool = False


class NoticeBody(msgspec.Struct, kw_only=True):
    text: Annotated[str, Meta(min_length=1, max_length=4000)]
    #: One user; omitted: everyone who is not banned.
    user: UserId | None = None


class WordsBody(msgspec.Struct, kw_only=True):
    add: Annotated[list[Word], Meta(max_length=1000)] = []
    remove: Annotated[list[Word], Meta(max_length=1000)] = []


class UserList(msgspec.Struct):
    users: list[UserRecord]
    next_after: int | None


class NodeList(msgspec.Struct):
    nodes: list[NodeLoad]


class NoticeResult(msgspec.Struct):
    sent: int


class WordList(msgspec.Struct):
    words: list[str]
    #: The filter's mode on this node: replace, reject or off.
    mode: str


class ConfigView(msgspec.Struct):
    config: dict[str, Any]


class BanBody(msgspec.Struct, kw_only=True):
    #: 0: until lifted.
    seconds: Annotated[int, Meta(ge=0, le=10 * 365 * 24 * 3600)] = 0
    reason: Annotated[str, Meta(max_length=256)] = ""


class ReasonBody(msgspec.Struct, kw_only=True):
    reason: Reason = ""


class PasswordBody(msgspec.Struct, kw_only=True):
    #: The new password; omitted: a generated one, returned once.
    password: Annotated[str, Meta(min_length=8, max_length=256)] | None = None
    reason: Reason = ""


class NewPassword(msgspec.Struct):
    password: str


class LoggedOut(msgspec.Struct):
    sessions: int


class TransferBody(msgspec.Struct, kw_only=True):
    user: UserId
    reason: Reason = ""


class GroupPage(msgspec.Struct):
    groups: list[Group]
    next_after: int | None


class MemberPage(msgspec.Struct):
    members: list[GroupMember]
    next_after: int | None


class ReportPage(msgspec.Struct):
    reports: list[Report]
    next_before: int | None


class ResolveBody(msgspec.Struct, kw_only=True):
    #: recall (a message), ban (a message's sender or the user), freeze (the group, or the message's),
    #: dismiss_group (a group), dismiss (the report: nothing to do).
    action: Literal["recall", "ban", "freeze", "dismiss_group", "dismiss"]
    #: Shown to the reporter with the outcome, and kept in the audit log.
    note: Reason = ""
    #: For ``ban``: 0 until lifted.
    ban_seconds: Annotated[int, Meta(ge=0, le=10 * 365 * 24 * 3600)] = 0


class SettingsBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    registration: Literal["open", "invite", "closed"] | msgspec.UnsetType = msgspec.UNSET
    user_invites: bool | msgspec.UnsetType = msgspec.UNSET
    user_invite_max_uses: Annotated[int, Meta(ge=1, le=10_000)] | msgspec.UnsetType = msgspec.UNSET
    user_invites_per_day: Annotated[int, Meta(ge=1, le=1000)] | msgspec.UnsetType = msgspec.UNSET


class AdminInviteBody(msgspec.Struct, kw_only=True):
    max_uses: Annotated[int, Meta(ge=1, le=10_000)] = 1
    #: Seconds until it expires; 0: never.
    ttl_s: Annotated[int, Meta(ge=0, le=365 * 24 * 3600)] = 7 * 24 * 3600
    note: Annotated[str, Meta(max_length=256)] = ""


class InviteList(msgspec.Struct):
    invites: list[Invite]


class AuditPage(msgspec.Struct):
    entries: list[AuditEntry]
    next_before: int | None


class StatFigure(msgspec.Struct):
    name: str
    value: float
    labels: dict[str, str] = {}


class Stats(msgspec.Struct):
    """The dashboard: this node's figures (the same providers as ``/metrics``, summed the same way), every
    node's load, and totals counted in the database."""

    node: str
    figures: list[StatFigure]
    nodes: list[NodeLoad]
    totals: dict[str, int]


async def _admin(ctx: Ctx) -> int:
    await ctx.s.admin.require_admin(ctx.me)
    return ctx.me


def _actor(ctx: Ctx) -> Actor:
    """Who is acting and from which address (the edge's view of the client, behind trusted proxies too)."""
    return Actor(ctx.me, str(ctx.request.get(CLIENT_IP) or ctx.request.remote or ""))


def _query_reason(ctx: Ctx) -> str:
    reason = ctx.request.query.get("reason", "")
    if len(reason) > 1024:
        raise invalid("reason", "at most 1024 characters")
    return reason


def _not_me(ctx: Ctx, user_id: int, what: str) -> None:
    if user_id == ctx.me:
        raise invalid("user_id", f"you cannot {what} yourself (use `hubbub admin` on the server)")


@route(
    "GET",
    "/api/v1/admin/users",
    summary="List users with their admin and ban flags",
    response=UserList,
    query={
        "q": "username or nickname prefix",
        "after": "user id to start after",
        "limit": "1-200, default 50",
    },
    tag="admin",
)
async def users(ctx: Ctx) -> UserList:
    await _admin(ctx)
    limit = ctx.query_int("limit", 50, 1, 200) or 50
    after = ctx.query_seq("after", MAX_ID) or 0
    found = await ctx.s.admin.users(ctx.request.query.get("q", ""), after, limit)
    return UserList(users=found, next_after=found[-1].user.id if len(found) == limit else None)


@route(
    "POST",
    "/api/v1/admin/users",
    summary="Create a user (optionally an admin)",
    body=CreateUserBody,
    response=UserRecord,
    status=201,
    tag="admin",
)
async def create_user(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    b: CreateUserBody = ctx.body
    return await ctx.s.admin.create_user(
        b.username, b.password, b.nickname, admin=b.admin, canary=b.canary, by=_actor(ctx)
    )


@route("GET", "/api/v1/admin/users/{user_id}", summary="One user", response=UserRecord, tag="admin")
async def user(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.user(ctx.path_int("user_id"))


@route(
    "PUT",
    "/api/v1/admin/users/{user_id}/ban",
    summary="Ban (optionally for a time, with a reason): revoke every session, close every connection",
    body=BanBody,
    response=UserRecord,
    tag="admin",
)
async def ban(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    user_id = ctx.path_int("user_id")
    _not_me(ctx, user_id, "ban")
    b: BanBody = ctx.body
    return await ctx.s.admin.ban_for(user_id, b.seconds, b.reason, by=_actor(ctx))


@route(
    "DELETE",
    "/api/v1/admin/users/{user_id}/ban",
    summary="Lift a ban",
    response=UserRecord,
    query={"reason": "for the audit log"},
    tag="admin",
)
async def unban(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.unban(ctx.path_int("user_id"), by=_actor(ctx), reason=_query_reason(ctx))


@route(
    "PUT",
    "/api/v1/admin/users/{user_id}/admin",
    summary="Make a user an admin",
    response=UserRecord,
    tag="admin",
)
async def grant(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.set_admin(ctx.path_int("user_id"), True, by=_actor(ctx))


@route(
    "DELETE",
    "/api/v1/admin/users/{user_id}/admin",
    summary="Take a user's admin rights away",
    response=UserRecord,
    tag="admin",
)
async def revoke(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    user_id = ctx.path_int("user_id")
    _not_me(ctx, user_id, "demote")
    return await ctx.s.admin.set_admin(user_id, False, by=_actor(ctx))


@route(
    "PUT",
    "/api/v1/admin/users/{user_id}/canary",
    summary="Mark a delivery canary's account: hidden from user search, out of product metrics, its messages purged",
    response=UserRecord,
    tag="admin",
)
async def mark_canary(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.set_canary(ctx.path_int("user_id"), True)


@route(
    "DELETE",
    "/api/v1/admin/users/{user_id}/canary",
    summary="Unmark a canary account",
    response=UserRecord,
    tag="admin",
)
async def unmark_canary(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.set_canary(ctx.path_int("user_id"), False)


@route(
    "DELETE",
    "/api/v1/admin/groups/{group_id}",
    summary="Dismiss a group (history stays readable, nothing else is allowed)",
    response=Group,
    query={"reason": "for the audit log"},
    tag="admin",
)
async def dismiss(ctx: Ctx) -> Group:
    await _admin(ctx)
    return await ctx.s.admin.dismiss_group(ctx.path_int("group_id"), _actor(ctx), _query_reason(ctx))


@route(
    "PUT",
    "/api/v1/admin/groups/{group_id}/freeze",
    summary="Freeze a group: read-only, sends are refused with group_frozen",
    body=ReasonBody,
    response=Group,
    tag="admin",
)
async def freeze(ctx: Ctx) -> Group:
    await _admin(ctx)
    return await ctx.s.admin.freeze_group(ctx.path_int("group_id"), True, _actor(ctx), ctx.body.reason)


@route(
    "DELETE",
    "/api/v1/admin/groups/{group_id}/freeze",
    summary="Unfreeze a group",
    response=Group,
    query={"reason": "for the audit log"},
    tag="admin",
)
async def unfreeze(ctx: Ctx) -> Group:
    await _admin(ctx)
    return await ctx.s.admin.freeze_group(ctx.path_int("group_id"), False, _actor(ctx), _query_reason(ctx))


@route(
    "GET",
    "/api/v1/admin/nodes",
    summary="Cluster nodes, their liveness and load",
    response=NodeList,
    tag="admin",
)
async def nodes(ctx: Ctx) -> NodeList:
    await _admin(ctx)
    return NodeList(nodes=await ctx.s.admin.nodes())


@route(
    "POST",
    "/api/v1/admin/notices",
    summary="Send a notice to one user or to everyone (stored, and pushed to those online)",
    body=NoticeBody,
    response=NoticeResult,
    tag="admin",
)
async def notice(ctx: Ctx) -> NoticeResult:
    await _admin(ctx)
    b: NoticeBody = ctx.body
    return NoticeResult(sent=await ctx.s.admin.notice(b.text, b.user, by=_actor(ctx)))


@route("GET", "/api/v1/admin/words", summary="The sensitive-word list", response=WordList, tag="admin")
async def words(ctx: Ctx) -> WordList:
    await _admin(ctx)
    return WordList(words=await ctx.s.admin.word_list(), mode=ctx.s.words.mode)


@route(
    "POST",
    "/api/v1/admin/words",
    summary="Add and remove sensitive words (every node applies the change within seconds)",
    body=WordsBody,
    response=WordList,
    tag="admin",
)
async def change_words(ctx: Ctx) -> WordList:
    await _admin(ctx)
    b: WordsBody = ctx.body
    found = await ctx.s.admin.change_words(b.add, b.remove, by=_actor(ctx))
    return WordList(words=found, mode=ctx.s.words.mode)


@route(
    "GET",
    "/api/v1/admin/config",
    summary="This node's effective config, secrets masked",
    response=ConfigView,
    tag="admin",
)
async def config(ctx: Ctx) -> ConfigView:
    await _admin(ctx)
    return ConfigView(config=ctx.s.admin.config_view())


@route(
    "GET",
    "/api/v1/admin/trace",
    summary="A message's path, without its body: received, stored, published, delivered, pulled, read",
    response=Timeline,
    query={
        "id": "the message id",
        "sender": "or: the sender's user id, with cmid",
        "cmid": "the sender's client message id",
    },
    tag="admin",
)
async def trace(ctx: Ctx) -> Timeline:
    await _admin(ctx)
    message_id = ctx.query_seq("id", 2**63 - 1)
    sender = ctx.query_seq("sender", MAX_ID)
    cmid = ctx.request.query.get("cmid") or None
    if message_id is None and (sender is None or cmid is None):
        raise invalid("id", "give the message id, or sender and cmid")
    found = await ctx.s.tracer.timeline(None if message_id is None else str(message_id), sender, cmid)
    if found is None:
        raise HubbubError(
            Code.NOT_FOUND, "no trace of that message (unknown, not sampled, or older than trace_ttl_s)"
        )
    return found


# -- issue 20: the console's routes ---------------------------------------------------------------
@route(
    "GET",
    "/api/v1/admin/stats",
    summary="The dashboard's figures (as /metrics, in JSON)",
    response=Stats,
    tag="admin",
)
async def stats(ctx: Ctx) -> Stats:
    await _admin(ctx)
    metrics = ctx.request.app.get(METRICS_KEY)
    summed: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for provider in metrics.providers if metrics is not None else ():
        for figure in provider.figures():
            key = (figure.name, figure.labels)
            summed[key] = summed.get(key, 0) + figure.value
    figures = [StatFigure(name=n, value=v, labels=dict(labels)) for (n, labels), v in sorted(summed.items())]
    return Stats(
        node=ctx.s.config.effective_node_id,
        figures=figures,
        nodes=await ctx.s.admin.nodes(),
        totals=await ctx.s.storage.admin_counts(),
    )


@route(
    "POST",
    "/api/v1/admin/users/{user_id}/logout",
    summary="End every session of a user (they may log in again)",
    body=ReasonBody,
    response=LoggedOut,
    tag="admin",
)
async def force_logout(ctx: Ctx) -> LoggedOut:
    await _admin(ctx)
    user_id = ctx.path_int("user_id")
    _not_me(ctx, user_id, "log out")
    return LoggedOut(sessions=await ctx.s.admin.force_logout(user_id, by=_actor(ctx), reason=ctx.body.reason))


@route(
    "POST",
    "/api/v1/admin/users/{user_id}/password",
    summary="Reset a user's password (given, or generated and returned once); ends their sessions",
    body=PasswordBody,
    response=NewPassword,
    tag="admin",
)
async def reset_password(ctx: Ctx) -> NewPassword:
    await _admin(ctx)
    user_id = ctx.path_int("user_id")
    _not_me(ctx, user_id, "reset the password of")
    b: PasswordBody = ctx.body
    new = await ctx.s.admin.reset_password(user_id, b.password, by=_actor(ctx), reason=b.reason)
    return NewPassword(password=new)


@route(
    "DELETE",
    "/api/v1/admin/users/{user_id}",
    summary="Delete an account: close it and anonymise its profile (docs/operations.md)",
    response=UserRecord,
    query={"reason": "for the audit log"},
    tag="admin",
)
async def delete_user(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    user_id = ctx.path_int("user_id")
    _not_me(ctx, user_id, "delete")
    return await ctx.s.admin.delete_user(user_id, by=_actor(ctx), reason=_query_reason(ctx))


@route(
    "GET",
    "/api/v1/admin/groups",
    summary="Search every group (dismissed and frozen ones too)",
    response=GroupPage,
    query={
        "q": "name prefix (or a word's)",
        "after": "group id to start after",
        "limit": "1-200, default 50",
    },
    tag="admin",
)
async def groups(ctx: Ctx) -> GroupPage:
    await _admin(ctx)
    limit = ctx.query_int("limit", 50, 1, 200) or 50
    found = await ctx.s.admin.find_groups(
        ctx.request.query.get("q", ""), ctx.query_seq("after", MAX_ID) or 0, limit
    )
    return GroupPage(groups=found, next_after=found[-1].id if len(found) == limit else None)


@route("GET", "/api/v1/admin/groups/{group_id}", summary="One group", response=Group, tag="admin")
async def group(ctx: Ctx) -> Group:
    await _admin(ctx)
    return await ctx.s.admin.group_view(ctx.path_int("group_id"))


@route(
    "GET",
    "/api/v1/admin/groups/{group_id}/members",
    summary="A group's members",
    response=MemberPage,
    query={"after": "user id to start after", "limit": "1-200, default 100"},
    tag="admin",
)
async def group_members(ctx: Ctx) -> MemberPage:
    await _admin(ctx)
    limit = ctx.query_int("limit", 100, 1, 200) or 100
    found = await ctx.s.admin.group_members(ctx.path_int("group_id"), ctx.query_seq("after", MAX_ID) or 0, limit)
    return MemberPage(members=found, next_after=found[-1].user.id if len(found) == limit else None)


@route(
    "POST",
    "/api/v1/admin/groups/{group_id}/owner",
    summary="Give a group to one of its members",
    body=TransferBody,
    response=Group,
    tag="admin",
)
async def transfer(ctx: Ctx) -> Group:
    await _admin(ctx)
    b: TransferBody = ctx.body
    return await ctx.s.admin.transfer_group(ctx.path_int("group_id"), b.user, _actor(ctx), b.reason)


@route(
    "GET",
    "/api/v1/admin/reports",
    summary="The reports queue, newest first",
    response=ReportPage,
    query={
        "status": "open (default), actioned, dismissed, or empty for all",
        "before": "report id",
        "limit": "1-200",
    },
    tag="admin",
)
async def reports(ctx: Ctx) -> ReportPage:
    await _admin(ctx)
    limit = ctx.query_int("limit", 50, 1, 200) or 50
    status = ctx.request.query.get("status", "open")
    found = await ctx.s.admin.reports(status, ctx.query_int("before", 0) or 0, limit)
    return ReportPage(reports=found, next_before=found[-1].id if len(found) == limit else None)


@route(
    "POST",
    "/api/v1/admin/reports/{report_id}/resolve",
    summary="Act on a report (recall, ban, freeze, dismiss_group) or dismiss it; the reporter is told",
    body=ResolveBody,
    response=Report,
    tag="admin",
)
async def resolve(ctx: Ctx) -> Report:
    await _admin(ctx)
    b: ResolveBody = ctx.body
    return await ctx.s.admin.resolve_report(
        ctx.path_int("report_id"), b.action, b.note, b.ban_seconds, by=_actor(ctx)
    )


@route(
    "GET",
    "/api/v1/admin/settings",
    summary="Settings an admin may change live",
    response=ServerSettings,
    tag="admin",
)
async def get_settings(ctx: Ctx) -> ServerSettings:
    await _admin(ctx)
    return await ctx.s.access.settings()


@route(
    "PATCH",
    "/api/v1/admin/settings",
    summary="Change registration mode and invite limits (stored; every node applies them at once)",
    body=SettingsBody,
    response=ServerSettings,
    tag="admin",
)
async def change_settings(ctx: Ctx) -> ServerSettings:
    await _admin(ctx)
    changes = {k: v for k, v in msgspec.structs.asdict(ctx.body).items() if v is not msgspec.UNSET}
    settings, changed = await ctx.s.access.change_settings(changes)
    if changed:
        await ctx.s.admin.audit(_actor(ctx), "settings.change", detail=changed)
    return settings


@route(
    "GET",
    "/api/v1/admin/invites",
    summary="Every registration invite, newest first",
    response=InviteList,
    query={"after": "invite code of the previous page's last"},
    tag="admin",
)
async def admin_invites(ctx: Ctx) -> InviteList:
    await _admin(ctx)
    return InviteList(invites=await ctx.s.access.invites(None, ctx.request.query.get("after", "")[:32], 100))


@route(
    "POST",
    "/api/v1/admin/invites",
    summary="Create a registration invite",
    body=AdminInviteBody,
    response=Invite,
    status=201,
    tag="admin",
)
async def admin_create_invite(ctx: Ctx) -> Invite:
    await _admin(ctx)
    b: AdminInviteBody = ctx.body
    invite = await ctx.s.access.create_invite(
        ctx.me, max_uses=b.max_uses, ttl_s=b.ttl_s, note=b.note, admin=True
    )
    await ctx.s.admin.audit(
        _actor(ctx), "invite.create", f"invite:{invite.code}", detail={"max_uses": b.max_uses}
    )
    return invite


@route("DELETE", "/api/v1/admin/invites/{code}", summary="Revoke any invite", response=Invite, tag="admin")
async def admin_revoke_invite(ctx: Ctx) -> Invite:
    await _admin(ctx)
    code = ctx.request.match_info["code"]
    invite = await ctx.s.access.revoke_invite(code, None)
    await ctx.s.admin.audit(_actor(ctx), "invite.revoke", f"invite:{code}")
    return invite


_AUDIT_QUERY = {
    "actor": "user id",
    "action": "e.g. user.ban",
    "target": "e.g. user:12, group:3",
    "since": "ms",
    "until": "ms",
}


def _audit_query(ctx: Ctx) -> AuditQuery:
    q = ctx.request.query
    for name in ("action", "target"):
        if len(q.get(name, "")) > 64:
            raise invalid(name, "at most 64 characters")
    return AuditQuery(
        actor=ctx.query_int("actor", None, 1, 2**31),
        action=q.get("action", ""),
        target=q.get("target", ""),
        since=ctx.query_int("since", 0) or 0,
        until=ctx.query_int("until", 0) or 0,
    )


@route(
    "GET",
    "/api/v1/admin/audit",
    summary="The audit log, newest first, filtered",
    response=AuditPage,
    query={**_AUDIT_QUERY, "before": "entry id", "limit": "1-500, default 100"},
    tag="admin",
)
async def audit(ctx: Ctx) -> AuditPage:
    await _admin(ctx)
    limit = ctx.query_int("limit", 100, 1, 500) or 100
    before = ctx.query_int("before", 0) or 0
    found = await ctx.s.admin.audit_log(_audit_query(ctx), before=before, limit=limit)
    return AuditPage(entries=found, next_before=found[-1].id if len(found) == limit else None)


#: Entries read per query while exporting: the export streams, whatever the log's size.
EXPORT_PAGE = 1000


@route(
    "GET",
    "/api/v1/admin/audit/export",
    summary="The audit log as JSON lines (application/x-ndjson), oldest first, filtered",
    query=_AUDIT_QUERY,
    tag="admin",
)
async def audit_export(ctx: Ctx) -> web.StreamResponse:
    await _admin(ctx)
    query = _audit_query(ctx)
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/x-ndjson",
            "Content-Disposition": 'attachment; filename="hubbub-audit.jsonl"',
        }
    )
    await response.prepare(ctx.request)
    after = 0
    while page := await ctx.s.admin.audit_log(query, after=after, limit=EXPORT_PAGE):
        await response.write(b"".join(msgspec.json.encode(e) + b"\n" for e in page))
        after = page[-1].id
        if len(page) < EXPORT_PAGE:
            break
    await response.write_eof()
    return response
