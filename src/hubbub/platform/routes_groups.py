"""Groups over HTTP: lifecycle, members and roles, mutes, profile, personal settings, read receipts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from hubbub.core.convs import group_conv
from hubbub.core.ids import MAX_ID, IdField
from hubbub.core.models import Group, GroupMember
from hubbub.platform.routing import Ctx, route

UserId = IdField


class CreateBody(msgspec.Struct, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)]
    members: Annotated[list[UserId], Meta(max_length=500)] = []
    notice: Annotated[str, Meta(max_length=1024)] = ""
    avatar: Annotated[str, Meta(max_length=128)] | None = None


class EditBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    name: Annotated[str, Meta(min_length=1, max_length=64)] | msgspec.UnsetType = msgspec.UNSET
    notice: Annotated[str, Meta(max_length=1024)] | msgspec.UnsetType = msgspec.UNSET
    avatar: Annotated[str, Meta(max_length=128)] | None | msgspec.UnsetType = msgspec.UNSET
    invite_policy: Literal["members", "admins"] | msgspec.UnsetType = msgspec.UNSET
    #: Deliver push-pull whatever the size (big groups are hot anyway).
    hot: bool | msgspec.UnsetType = msgspec.UNSET
    #: Listed in the public directory, joinable without an invite (docs/protocol.md, "Join links").
    public: bool | msgspec.UnsetType = msgspec.UNSET
    #: Joins by link or from the directory need the owner's or an admin's approval.
    join_approval: bool | msgspec.UnsetType = msgspec.UNSET
    #: Who may pin messages (docs/protocol.md, "Message actions").
    pin_policy: Literal["admins", "members"] | msgspec.UnsetType = msgspec.UNSET


class InviteBody(msgspec.Struct, kw_only=True):
    users: Annotated[list[UserId], Meta(min_length=1, max_length=500)]


class UserBody(msgspec.Struct, kw_only=True):
    user: UserId


class MuteBody(msgspec.Struct, kw_only=True):
    user: UserId
    #: 0 unmutes.
    seconds: Annotated[int, Meta(ge=0, le=30 * 24 * 3600)]


class MuteAllBody(msgspec.Struct, kw_only=True):
    muted: bool


class PrefsBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    nickname: Annotated[str, Meta(max_length=64)] | msgspec.UnsetType = msgspec.UNSET
    dnd: bool | msgspec.UnsetType = msgspec.UNSET


class GroupList(msgspec.Struct):
    groups: list[Group]


class OnlineMember(msgspec.Struct):
    user: int
    terminals: list[str]


class OnlinePage(msgspec.Struct):
    #: The members of this page that are online (the others are offline).
    online: list[OnlineMember]
    next_after: int | None


class MemberPage(msgspec.Struct):
    members: list[GroupMember]
    #: Pass as ``after`` for the next page; null when this was the last.
    next_after: int | None


class Receipts(msgspec.Struct):
    conv: str
    seq: int
    read: int
    total: int
    readers: list[int]


def _set(struct: msgspec.Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not msgspec.UNSET}


@route(
    "POST",
    "/api/v1/groups",
    summary="Create a group with my friends as first members; I am its owner",
    body=CreateBody,
    response=Group,
    status=201,
    tag="groups",
)
async def create(ctx: Ctx) -> Group:
    b: CreateBody = ctx.body
    fields = {"name": b.name, "notice": b.notice, "avatar": b.avatar}
    return await ctx.s.groups.create(ctx.me, fields, b.members)


@route("GET", "/api/v1/groups", summary="My groups", response=GroupList, tag="groups")
async def mine(ctx: Ctx) -> GroupList:
    return GroupList(groups=await ctx.s.groups.my_groups(ctx.me))


@route(
    "GET",
    "/api/v1/groups/{group_id}",
    summary="A group's profile (members only)",
    response=Group,
    tag="groups",
)
async def profile(ctx: Ctx) -> Group:
    return await ctx.s.groups.profile(ctx.me, ctx.path_int("group_id"))


@route(
    "PATCH",
    "/api/v1/groups/{group_id}",
    summary="Edit name, notice, avatar, invite policy, hot flag or join settings (owner/admins)",
    body=EditBody,
    response=Group,
    tag="groups",
)
async def edit(ctx: Ctx) -> Group:
    return await ctx.s.groups.edit(ctx.me, ctx.path_int("group_id"), _set(ctx.body))


@route("DELETE", "/api/v1/groups/{group_id}", summary="Dismiss the group (owner)", status=204, tag="groups")
async def dismiss(ctx: Ctx) -> None:
    await ctx.s.groups.dismiss(ctx.me, ctx.path_int("group_id"))


@route(
    "GET",
    "/api/v1/groups/{group_id}/members",
    summary="Members with roles, paged by user id",
    response=MemberPage,
    query={
        "after": "user id to start after (default 0)",
        "limit": "1-200, default 100",
        "q": "only members whose username, nickname or group nickname starts with this",
    },
    tag="groups",
)
async def members(ctx: Ctx) -> MemberPage:
    limit = ctx.query_int("limit", 100, 1, 200) or 100
    after = ctx.query_seq("after", MAX_ID) or 0
    page = await ctx.s.groups.members(
        ctx.me, ctx.path_int("group_id"), after, limit, ctx.request.query.get("q", "")
    )
    return MemberPage(members=page, next_after=page[-1].user.id if len(page) == limit else None)


@route(
    "GET",
    "/api/v1/groups/{group_id}/members/online",
    summary="Which members of a page are online (presence of group members, on request)",
    response=OnlinePage,
    query={"after": "user id to start after (default 0)", "limit": "1-200, default 200"},
    tag="groups",
)
async def online(ctx: Ctx) -> OnlinePage:
    limit = ctx.query_int("limit", 200, 1, 200) or 200
    after = ctx.query_seq("after", MAX_ID) or 0
    found, next_after = await ctx.s.groups.online(ctx.me, ctx.path_int("group_id"), after, limit)
    return OnlinePage(
        online=[OnlineMember(user=uid, terminals=list(terms)) for uid, terms in sorted(found.items())],
        next_after=next_after,
    )


@route(
    "POST",
    "/api/v1/groups/{group_id}/members",
    summary="Invite friends (members, or admins only by policy)",
    body=InviteBody,
    response=Group,
    tag="groups",
)
async def invite(ctx: Ctx) -> Group:
    return await ctx.s.groups.invite(ctx.me, ctx.path_int("group_id"), ctx.body.users)


@route(
    "DELETE",
    "/api/v1/groups/{group_id}/members/{user_id}",
    summary="Kick a member (owner/admins), or quit when it is me",
    status=204,
    tag="groups",
)
async def remove(ctx: Ctx) -> None:
    group_id, user_id = ctx.path_int("group_id"), ctx.path_int("user_id")
    if user_id == ctx.me:
        await ctx.s.groups.quit(ctx.me, group_id)
    else:
        await ctx.s.groups.kick(ctx.me, group_id, user_id)


@route(
    "POST",
    "/api/v1/groups/{group_id}/owner",
    summary="Transfer ownership (owner)",
    body=UserBody,
    response=Group,
    tag="groups",
)
async def transfer(ctx: Ctx) -> Group:
    return await ctx.s.groups.transfer(ctx.me, ctx.path_int("group_id"), ctx.body.user)


@route(
    "PUT",
    "/api/v1/groups/{group_id}/admins/{user_id}",
    summary="Appoint an admin (owner)",
    response=Group,
    tag="groups",
)
async def add_admin(ctx: Ctx) -> Group:
    return await ctx.s.groups.set_admin(ctx.me, ctx.path_int("group_id"), ctx.path_int("user_id"), True)


@route(
    "DELETE",
    "/api/v1/groups/{group_id}/admins/{user_id}",
    summary="Remove an admin (owner)",
    response=Group,
    tag="groups",
)
async def remove_admin(ctx: Ctx) -> Group:
    return await ctx.s.groups.set_admin(ctx.me, ctx.path_int("group_id"), ctx.path_int("user_id"), False)


@route(
    "POST",
    "/api/v1/groups/{group_id}/mutes",
    summary="Mute a member for a time; seconds=0 unmutes",
    body=MuteBody,
    response=Group,
    tag="groups",
)
async def mute(ctx: Ctx) -> Group:
    return await ctx.s.groups.mute(ctx.me, ctx.path_int("group_id"), ctx.body.user, ctx.body.seconds)


@route(
    "POST",
    "/api/v1/groups/{group_id}/mute_all",
    summary="Mute everyone but the owner and admins",
    body=MuteAllBody,
    response=Group,
    tag="groups",
)
async def mute_all(ctx: Ctx) -> Group:
    return await ctx.s.groups.mute_all(ctx.me, ctx.path_int("group_id"), ctx.body.muted)


@route(
    "PATCH",
    "/api/v1/groups/{group_id}/me",
    summary="My group nickname and do-not-disturb",
    body=PrefsBody,
    response=GroupMember,
    tag="groups",
)
async def prefs(ctx: Ctx) -> GroupMember:
    return await ctx.s.groups.set_prefs(ctx.me, ctx.path_int("group_id"), _set(ctx.body))


@route(
    "GET",
    "/api/v1/groups/{group_id}/messages/{seq}/receipts",
    summary="Who has read a group message (count, total, up to 100 readers)",
    response=Receipts,
    tag="groups",
)
async def receipts(ctx: Ctx) -> Receipts:
    group_id, seq = ctx.path_int("group_id"), ctx.path_int("seq")
    read, total, readers = await ctx.s.groups.receipts(ctx.me, group_id, seq)
    return Receipts(conv=group_conv(group_id), seq=seq, read=read, total=total, readers=readers)
