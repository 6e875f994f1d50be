"""Accounts: register, log in, tokens, profile, people search."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from hubbub.core.models import Tokens, User
from hubbub.platform.limits import CLIENT_IP
from hubbub.platform.routing import Ctx, route

Name = Annotated[str, Meta(min_length=1, max_length=64)]
Password = Annotated[str, Meta(max_length=256)]


class RegisterBody(msgspec.Struct, kw_only=True):
    #: The rule of services/names.py, stated here so /openapi.json tells clients; the service checks the
    #: whole string (a JSON-schema ``$`` would let a trailing newline through).
    username: Annotated[str, Meta(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9_.-]{3,32}$")]
    password: Password
    nickname: Name | None = None
    #: A registration invite code: needed when the server's registration is ``invite``.
    invite: Annotated[str, Meta(min_length=1, max_length=32)] | None = None


class LoginBody(msgspec.Struct, kw_only=True):
    username: Annotated[str, Meta(max_length=64)]
    password: Password


class RefreshBody(msgspec.Struct, kw_only=True):
    refresh_token: Annotated[str, Meta(max_length=256)]


class PasswordBody(msgspec.Struct, kw_only=True):
    old_password: Password
    new_password: Password
    #: Issue 15: false keeps the other sessions logged in.
    logout_others: bool = True


class ProfileBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    nickname: Name | msgspec.UnsetType = msgspec.UNSET
    signature: Annotated[str, Meta(max_length=256)] | msgspec.UnsetType = msgspec.UNSET
    avatar: Annotated[str, Meta(max_length=128)] | msgspec.UnsetType | None = msgspec.UNSET


class UserList(msgspec.Struct):
    users: list[User]


@route(
    "POST",
    "/api/v1/auth/register",
    summary="Create an account and log in",
    body=RegisterBody,
    response=Tokens,
    status=201,
    auth=False,
    tag="auth",
)
async def register(ctx: Ctx) -> Tokens:
    b: RegisterBody = ctx.body
    return await ctx.s.auth.register(b.username, b.password, b.nickname, b.invite)


@route(
    "POST",
    "/api/v1/auth/login",
    summary="Log in (rate limited per username and address, and per address)",
    body=LoginBody,
    response=Tokens,
    auth=False,
    tag="auth",
)
async def login(ctx: Ctx) -> Tokens:
    address = ctx.request.get(CLIENT_IP) or ctx.request.remote or ""
    return await ctx.s.auth.login(ctx.body.username, ctx.body.password, address)


@route(
    "POST",
    "/api/v1/auth/refresh",
    summary="Swap a refresh token for a new token pair",
    body=RefreshBody,
    response=Tokens,
    auth=False,
    tag="auth",
)
async def refresh(ctx: Ctx) -> Tokens:
    return await ctx.s.auth.refresh(ctx.body.refresh_token)


@route(
    "POST",
    "/api/v1/auth/logout",
    summary="End the session of this refresh token",
    body=RefreshBody,
    status=204,
    auth=False,
    tag="auth",
)
async def logout(ctx: Ctx) -> None:
    await ctx.s.auth.logout(ctx.body.refresh_token)


@route(
    "POST",
    "/api/v1/auth/password",
    summary="Change password (rate limited per session and user); every other session is revoked unless "
    "logout_others is false",
    body=PasswordBody,
    status=204,
    tag="auth",
)
async def change_password(ctx: Ctx) -> None:
    assert ctx.principal is not None
    b: PasswordBody = ctx.body
    await ctx.s.auth.change_password(ctx.principal, b.old_password, b.new_password, logout_others=b.logout_others)


@route("GET", "/api/v1/me", summary="My profile", response=User, tag="users")
async def me(ctx: Ctx) -> User:
    return await ctx.s.accounts.user(ctx.me)


@route("PATCH", "/api/v1/me", summary="Edit my profile", body=ProfileBody, response=User, tag="users")
async def edit_me(ctx: Ctx) -> User:
    changes: dict[str, Any] = msgspec.structs.asdict(ctx.body)
    changes = {k: v for k, v in changes.items() if v is not msgspec.UNSET}
    before = await ctx.s.accounts.user(ctx.me)
    after = await ctx.s.accounts.update_profile(ctx.me, changes)
    if after != before:  # issue 15: friends and fellow members see it live
        await ctx.s.social.profile_changed(after)
    return after


@route("GET", "/api/v1/users/{user_id}", summary="A user's public profile", response=User, tag="users")
async def user(ctx: Ctx) -> User:
    return await ctx.s.accounts.user(ctx.path_int("user_id"))


@route(
    "GET",
    "/api/v1/users",
    summary="Find users by username or nickname prefix",
    response=UserList,
    query={"q": "prefix, 1-32 characters (required)", "limit": "1-50, default 20"},
    tag="users",
)
async def search(ctx: Ctx) -> UserList:
    limit = ctx.query_int("limit", 20, 1, 50) or 20
    return UserList(users=await ctx.s.accounts.search(ctx.request.query.get("q", ""), limit))
