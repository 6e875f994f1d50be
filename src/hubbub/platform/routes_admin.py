"""Server administration over HTTP (``/api/v1/admin/*``): for users with ``is_admin`` only, others get 403
``forbidden``. The same operations as ``hubbub admin`` (services/admin.py; docs/operations.md)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.core.ids import MAX_ID, IdField
from hubbub.core.models import Group
from hubbub.engines.broker.base import NodeLoad
from hubbub.engines.storage.base import UserRecord
from hubbub.platform.routing import Ctx, route
from hubbub.proof.trace import Timeline

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


async def _admin(ctx: Ctx) -> int:
    await ctx.s.admin.require_admin(ctx.me)
    return ctx.me


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
    return await ctx.s.admin.create_user(b.username, b.password, b.nickname, admin=b.admin, canary=b.canary)


@route("GET", "/api/v1/admin/users/{user_id}", summary="One user", response=UserRecord, tag="admin")
async def user(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.user(ctx.path_int("user_id"))


@route(
    "PUT",
    "/api/v1/admin/users/{user_id}/ban",
    summary="Ban: revoke every session and close every connection (4403) on every node",
    response=UserRecord,
    tag="admin",
)
async def ban(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    user_id = ctx.path_int("user_id")
    _not_me(ctx, user_id, "ban")
    return await ctx.s.admin.ban(user_id)


@route("DELETE", "/api/v1/admin/users/{user_id}/ban", summary="Lift a ban", response=UserRecord, tag="admin")
async def unban(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.unban(ctx.path_int("user_id"))


@route(
    "PUT",
    "/api/v1/admin/users/{user_id}/admin",
    summary="Make a user an admin",
    response=UserRecord,
    tag="admin",
)
async def grant(ctx: Ctx) -> UserRecord:
    await _admin(ctx)
    return await ctx.s.admin.set_admin(ctx.path_int("user_id"), True)


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
    return await ctx.s.admin.set_admin(user_id, False)


@route(
    "PUT",
    "/api/v1/admin/users/{user_id}/canary",
    summary="Mark a delivery canary's account: hidden from user search, its messages purged by canary-purge",
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
    tag="admin",
)
async def dismiss(ctx: Ctx) -> Group:
    return await ctx.s.admin.dismiss_group(ctx.path_int("group_id"), await _admin(ctx))


@route(
    "PUT",
    "/api/v1/admin/groups/{group_id}/freeze",
    summary="Freeze a group: read-only, sends are refused with group_frozen",
    response=Group,
    tag="admin",
)
async def freeze(ctx: Ctx) -> Group:
    return await ctx.s.admin.freeze_group(ctx.path_int("group_id"), True, await _admin(ctx))


@route(
    "DELETE",
    "/api/v1/admin/groups/{group_id}/freeze",
    summary="Unfreeze a group",
    response=Group,
    tag="admin",
)
async def unfreeze(ctx: Ctx) -> Group:
    return await ctx.s.admin.freeze_group(ctx.path_int("group_id"), False, await _admin(ctx))


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
    return NoticeResult(sent=await ctx.s.admin.notice(b.text, b.user))


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
    return WordList(words=await ctx.s.admin.change_words(b.add, b.remove), mode=ctx.s.words.mode)


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
