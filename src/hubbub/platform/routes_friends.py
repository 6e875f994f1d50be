"""Friends and friend requests."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from hubbub.core.ids import IdField
from hubbub.core.models import Friend, FriendRequest
from hubbub.platform.routing import Ctx, route


class RequestBody(msgspec.Struct, kw_only=True):
    to: IdField
    note: Annotated[str, Meta(max_length=256)] = ""


class FriendList(msgspec.Struct):
    friends: list[Friend]


class RequestLists(msgspec.Struct):
    incoming: list[FriendRequest]
    outgoing: list[FriendRequest]


@route("GET", "/api/v1/friends", summary="My friends, with online status", response=FriendList, tag="friends")
async def friends(ctx: Ctx) -> FriendList:
    return FriendList(friends=await ctx.s.friends.friends(ctx.me))


@route(
    "DELETE", "/api/v1/friends/{user_id}", summary="Remove a friend (both sides)", status=204, tag="friends"
)
async def remove(ctx: Ctx) -> None:
    await ctx.s.friends.remove(ctx.me, ctx.path_int("user_id"))


@route(
    "POST",
    "/api/v1/friends/requests",
    summary="Ask someone to be friends (asking back accepts)",
    body=RequestBody,
    response=FriendRequest,
    status=201,
    tag="friends",
)
async def send_request(ctx: Ctx) -> FriendRequest:
    return await ctx.s.friends.request(ctx.me, ctx.body.to, ctx.body.note)


@route(
    "GET",
    "/api/v1/friends/requests",
    summary="Pending requests, to me and from me",
    response=RequestLists,
    tag="friends",
)
async def requests(ctx: Ctx) -> RequestLists:
    incoming, outgoing = await ctx.s.friends.requests(ctx.me)
    return RequestLists(incoming=incoming, outgoing=outgoing)


@route(
    "POST",
    "/api/v1/friends/requests/{request_id}/accept",
    summary="Accept a request to me",
    response=FriendRequest,
    tag="friends",
)
async def accept(ctx: Ctx) -> FriendRequest:
    return await ctx.s.friends.accept(ctx.me, ctx.path_int("request_id"))


@route(
    "POST",
    "/api/v1/friends/requests/{request_id}/decline",
    summary="Decline a request to me",
    response=FriendRequest,
    tag="friends",
)
async def decline(ctx: Ctx) -> FriendRequest:
    return await ctx.s.friends.decline(ctx.me, ctx.path_int("request_id"))
