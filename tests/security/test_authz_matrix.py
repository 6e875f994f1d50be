"""Who may do what: every HTTP route and every WebSocket frame, tried by every kind of caller.

The callers, all around one *owner*:

| actor | relation to the owner's things |
|---|---|
| anonymous | no token at all |
| outsider | a registered user with no relation to anyone |
| nonfriend | has a pending friend request to the owner (knows them, is not a friend) |
| former | a friend of the owner who was in the group and was kicked |
| member | a friend, a plain member of the group, the owner's private conversation partner |
| admin | a friend, an admin of the group, and the server's administrator (the first account) |
| owner | owns the group, the private conversation, the uploads |

Every route of ``/openapi.json`` must have a row (a new route without one fails the test). Each call's outcome
must be the row's: success, or the documented error (code *and* HTTP status from docs/protocol.md). And no
response body or frame may carry a *canary* the caller is not entitled to: message texts, a group notice, a
member's group nickname, a friend-request note, the bytes of files.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from PIL import Image

from hubbub.client import ApiError, HubbubClient
from tests.conftest import PASSWORD, base_url
from tests.security.conftest import RELAXED, documented_errors

ACTORS = ("anonymous", "outsider", "nonfriend", "former", "member", "admin", "owner")
OK = "ok"
#: Past authorization: success or any documented refusal other than 401/403 (admin routes called with
#: arbitrary bodies).
PASS = "pass"
_names = itertools.count(1)


def who(default: str, *, anonymous: str = "unauthorized", **overrides: str) -> dict[str, str]:
    table = dict.fromkeys(ACTORS, default)
    table["anonymous"] = anonymous
    table.update(overrides)
    return table


MEMBERS_OK = who("not_found", member=OK, admin=OK, owner=OK)  # group reads: others must not learn it exists
MEMBERS_OK_FORBIDDEN = who("forbidden", member=OK, admin=OK, owner=OK)  # conversation reads by id
PAIR_OK = who("forbidden", member=OK, owner=OK)  # the owner-member private conversation
EVERYONE = who(OK)


@dataclass
class Call:
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    data: bytes | None = None
    query: dict[str, str] = field(default_factory=dict)
    token: str | None = None  # overrides the actor's own access token


Prepare = Callable[["World", str], Awaitable[Call]]
After = Callable[["World", str, Any], Awaitable[None]]


@dataclass
class Row:
    method: str
    path: str
    expect: dict[str, str]
    prepare: Prepare | None = None
    after: After | None = None  # restores shared state after a successful call
    label: str = ""


def fixed(**params: Any) -> Prepare:
    async def prepare(world: World, actor: str) -> Call:
        return Call(params={k: v(world) if callable(v) else v for k, v in params.items()})

    return prepare


class World:
    """The owner's things, made once; ``fresh_group`` makes a throwaway group with the same roles."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.c: dict[str, HubbubClient] = {}
        self.canaries: dict[str, set[str]] = {}

    def user(self, actor: str) -> int:
        return self.c[actor].user_id

    def canary(self, label: str, *entitled: str) -> str:
        value = f"CANARY-{label}-{secrets.token_hex(4)}"
        self.canaries[value] = set(entitled)
        return value

    async def build(self) -> None:
        # The first account is the server's administrator.
        for actor in ("admin", "owner", "member", "former", "nonfriend", "outsider", "guest"):
            client = HubbubClient(self.url)
            await client.register(f"{actor}{next(_names)}", PASSWORD)
            self.c[actor] = client
        owner = self.c["owner"]
        for actor in ("admin", "member", "former"):
            await owner.befriend(self.c[actor])
        for actor in ("owner", "admin", "member"):
            await self.c[actor].befriend(self.c["guest"])
        note = self.canary("NOTE", "nonfriend", "owner")
        self.request_id = (await self.api("nonfriend", "POST", "/api/v1/friends/requests", {"to": owner.user_id, "note": note}))["id"]

        self.group, self.conv_g = await self.fresh_group()
        gid = self.group
        self.conv_p = f"p:{min(owner.user_id, self.user('member'))}:{max(owner.user_id, self.user('member'))}"
        # Everything below happens after the kick: the former member must never see any of it.
        await self.api("owner", "PATCH", f"/api/v1/groups/{gid}", {"notice": self.canary("NOTICE", "owner", "admin", "member")})
        await self.api("member", "PATCH", f"/api/v1/groups/{gid}/me", {"nickname": self.canary("NICK", "owner", "admin", "member")})
        await self.send("owner", {"conv": self.conv_g}, self.canary("GROUPMSG", "owner", "admin", "member"))
        await self.send("owner", {"to": self.user("member")}, self.canary("PRIVMSG", "owner", "member"))
        self.upload_g = await self.upload("owner", self.canary("FILEG", "owner", "admin", "member"))
        self.upload_p = await self.upload("owner", self.canary("FILEP", "owner", "member"))
        self.upload_priv = await self.upload("owner", self.canary("FILEPRIV", "owner"))
        self.image_g = await self.upload("owner", None)
        for upload, dest in ((self.upload_g, {"conv": self.conv_g}), (self.image_g, {"conv": self.conv_g})):
            await self.send_media("owner", dest, upload)
        await self.send_media("owner", {"to": self.user("member")}, self.upload_p)
        self.seq_g = (await self.api("owner", "GET", f"/api/v1/conversations/{self.conv_g}/messages"))["messages"][-1]["seq"]

    async def fresh_group(self) -> tuple[int, str]:
        members = [self.user(a) for a in ("admin", "member", "former")]
        group = await self.api("owner", "POST", "/api/v1/groups", {"name": "team", "members": members})
        gid = group["id"]
        await self.api("owner", "PUT", f"/api/v1/groups/{gid}/admins/{self.user('admin')}")
        await self.api("owner", "DELETE", f"/api/v1/groups/{gid}/members/{self.user('former')}")
        return gid, group["conv"]

    async def api(self, actor: str, method: str, path: str, body: Any = None, **query: Any) -> Any:
        return await self.c[actor].api(method, path, body, **query)

    async def send(self, actor: str, dest: dict[str, Any], text: str) -> dict[str, Any]:
        body = {"cmid": secrets.token_hex(8), "type": "text", "body": {"text": text}, **dest}
        return dict(await self.api(actor, "POST", "/api/v1/messages", body))

    async def send_media(self, actor: str, dest: dict[str, Any], upload: dict[str, Any]) -> None:
        body = {"cmid": secrets.token_hex(8), "type": upload["kind"], "body": {"upload": upload["upload"]}, **dest}
        await self.api(actor, "POST", "/api/v1/messages", body)

    async def upload(self, actor: str, canary: str | None) -> dict[str, Any]:
        if canary is None:
            buf = io.BytesIO()
            Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "PNG")
            data, kind = buf.getvalue(), "image"
        else:
            data, kind = f"the secret is {canary}\n".encode(), "file"
        client = self.c[actor]
        headers = {"Authorization": f"Bearer {client.access_token}"}
        async with client.http.post(
            f"{self.url}/api/v1/uploads", data=data, params={"kind": kind, "name": "x.txt"}, headers=headers
        ) as resp:
            assert resp.status == 201, await resp.text()
            return dict(await resp.json())

    async def pending_request(self) -> int:
        """The nonfriend's pending request to the owner, made again if a row answered it."""
        incoming, _ = await self.requests_of("owner")
        for r in incoming:
            if r["from"]["id"] == self.user("nonfriend"):
                return int(r["id"])
        made = await self.api("nonfriend", "POST", "/api/v1/friends/requests", {"to": self.user("owner")})
        return int(made["id"])

    async def requests_of(self, actor: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        lists = await self.api(actor, "GET", "/api/v1/friends/requests")
        return lists["incoming"], lists["outgoing"]

    async def new_session(self, actor: str) -> dict[str, Any]:
        """A second login of the actor, so refresh/logout rows do not end the session the test uses."""
        async with aiohttp.ClientSession() as http:
            body = {"username": self.c[actor].user["username"], "password": PASSWORD}  # type: ignore[index]
            async with http.post(f"{self.url}/api/v1/auth/login", json=body) as resp:
                return dict(await resp.json())

    async def close(self) -> None:
        for client in self.c.values():
            await client.close()
        for extra in ("owner_web", "member_web"):  # the call rows' second devices
            if hasattr(self, extra):
                await getattr(self, extra).close()


# -- the table ------------------------------------------------------------------------------------
def group_call(**extra: Callable[[World, str], Any]) -> Prepare:
    """A fresh group for a call that changes it; ``extra`` path params computed from the world."""

    async def prepare(world: World, actor: str) -> Call:
        gid, _ = await world.fresh_group()
        world.last_gid = gid  # type: ignore[attr-defined]
        return Call(params={"group_id": gid, **{k: f(world, actor) for k, f in extra.items()}})

    return prepare


def body_of(prepare: Prepare, body: Callable[[World, str], Any]) -> Prepare:
    async def with_body(world: World, actor: str) -> Call:
        call = await prepare(world, actor)
        call.json = body(world, actor)
        return call

    return with_body


async def refresh_call(world: World, actor: str) -> Call:
    if actor == "anonymous":
        return Call(json={"refresh_token": "r1.not-a-token"})
    return Call(json={"refresh_token": (await world.new_session(actor))["refresh_token"]})


async def login_call(world: World, actor: str) -> Call:
    if actor == "anonymous":
        return Call(json={"username": "nobody-here", "password": PASSWORD})
    return Call(json={"username": world.c[actor].user["username"], "password": PASSWORD})  # type: ignore[index]


async def register_call(world: World, actor: str) -> Call:
    return Call(json={"username": f"new{next(_names)}_{secrets.token_hex(3)}", "password": PASSWORD})


async def recall_member_message(world: World, actor: str) -> Call:
    ack = await world.send("member", {"conv": world.conv_g}, "to be recalled")
    return Call(params={"conv": world.conv_g, "seq": ack["seq"]})


async def recall_owner_private(world: World, actor: str) -> Call:
    ack = await world.send("owner", {"to": world.user("member")}, "to be recalled")
    return Call(params={"conv": world.conv_p, "seq": ack["seq"]})


def on_member_message(body: Callable[[World, str], Any] | None = None) -> Prepare:
    """A fresh group message of the member (editable by them alone), with an optional body."""

    async def prepare(world: World, actor: str) -> Call:
        ack = await world.send("member", {"conv": world.conv_g}, "to be acted on")
        return Call(params={"conv": world.conv_g, "seq": ack["seq"]}, json=body(world, actor) if body else None)

    return prepare


def on_group_message(body: Any = None, **query: str) -> Prepare:
    async def prepare(world: World, actor: str) -> Call:
        return Call(params={"conv": world.conv_g, "seq": world.seq_g}, json=body, query=dict(query))

    return prepare


async def request_call(world: World, actor: str) -> Call:
    return Call(params={"request_id": await world.pending_request()})


async def upload_call(world: World, actor: str) -> Call:
    return Call(data=b"just some bytes\n", query={"kind": "file", "name": "notes.txt"})


async def refriend(world: World, actor: str, _result: Any) -> None:
    if actor in ("admin", "member", "former"):
        await world.c["owner"].befriend(world.c[actor])


async def decline_outsider(world: World, actor: str, result: Any) -> None:
    if actor == "outsider":
        await world.api("owner", "POST", f"/api/v1/friends/requests/{result['id']}/decline")


async def unfriend_nonfriend(world: World, actor: str, _result: Any) -> None:
    if actor == "owner":  # the owner accepted: undo it, the nonfriend asks again at the next row
        await world.api("owner", "DELETE", f"/api/v1/friends/{world.user('nonfriend')}")


def msg(dest: Callable[[World], dict[str, Any]]) -> Prepare:
    async def prepare(world: World, actor: str) -> Call:
        body = {"cmid": secrets.token_hex(8), "type": "text", "body": {"text": "hello"}, **dest(world)}
        return Call(json=body)

    return prepare


async def owner_export(world: World, actor: str) -> Call:
    """One export of the owner's (the POST row may have made it already)."""
    if not hasattr(world, "owner_export"):
        mine = (await world.api("owner", "GET", "/api/v1/exports"))["exports"]
        made = mine[0] if mine else await world.api("owner", "POST", "/api/v1/exports")
        world.owner_export = made["id"]  # type: ignore[attr-defined]
    return Call(params={"export_id": world.owner_export})  # type: ignore[attr-defined]


async def admin_invite(world: World) -> Call:
    invite = await world.api("admin", "POST", "/api/v1/invites", {"max_uses": 1})
    return Call(params={"code": invite["code"]})


def join_settings(**fields: bool) -> Prepare:
    """A fresh group with these join settings (set by its owner)."""

    async def prepare(world: World, actor: str) -> Call:
        gid, _ = await world.fresh_group()
        await world.api("owner", "PATCH", f"/api/v1/groups/{gid}", fields)
        return Call(params={"group_id": gid})

    return prepare


def link_call(fresh: bool) -> Prepare:
    """A live join link: of a fresh group (joins change it), or of the world's group (with its canaries)."""

    async def prepare(world: World, actor: str) -> Call:
        gid = (await world.fresh_group())[0] if fresh else world.group
        link = await world.api("owner", "POST", f"/api/v1/groups/{gid}/links", {})
        return Call(params={"group_id": gid, "code": link["code"]})

    return prepare


async def join_request_call(world: World, actor: str) -> Call:
    """A pending request of the guest (no member) to a fresh group that needs approval."""
    call = await join_settings(join_approval=True)(world, actor)
    gid = call.params["group_id"]
    link = await world.api("owner", "POST", f"/api/v1/groups/{gid}/links", {})
    asked = await world.api("guest", "POST", f"/api/v1/links/{link['code']}/join")
    return Call(params={"group_id": gid, "request_id": asked["request"]["id"]})


G = "/api/v1/groups/{group_id}"
ROWS: list[Row] = [
    # -- accounts ---------------------------------------------------------------------------------
    Row("POST", "/api/v1/auth/register", who(OK, anonymous=OK), register_call),
    Row("POST", "/api/v1/auth/login", who(OK), login_call),
    Row("POST", "/api/v1/auth/refresh", who(OK), refresh_call),
    Row("POST", "/api/v1/auth/logout", who(OK), refresh_call),
    # A wrong old password everywhere: the row checks that the route wants a session, nothing more.
    Row(
        "POST",
        "/api/v1/auth/password",
        who("unauthorized"),
        lambda w, a: _const(Call(json={"old_password": "not-the-password", "new_password": "whatever-else"})),
    ),
    Row("GET", "/api/v1/me", EVERYONE),
    Row("PATCH", "/api/v1/me", EVERYONE, lambda w, a: _const(Call(json={"signature": "hi"}))),
    Row("GET", "/api/v1/users/{user_id}", EVERYONE, fixed(user_id=lambda w: w.user("owner"))),
    Row("GET", "/api/v1/users", EVERYONE, lambda w, a: _const(Call(query={"q": "own"}))),
    # -- friends ----------------------------------------------------------------------------------
    # -- calls ------------------------------------------------------------------------------------
    Row("GET", "/api/v1/calls/ice", EVERYONE),
    Row("GET", "/api/v1/friends", EVERYONE),
    Row(
        "DELETE",
        "/api/v1/friends/{user_id}",
        who("not_found", member=OK, admin=OK, former=OK),
        fixed(user_id=lambda w: w.user("owner")),
        after=refriend,
    ),
    Row(
        "POST",
        "/api/v1/friends/requests",
        who("conflict", outsider=OK, owner="invalid_field"),
        lambda w, a: _const(Call(json={"to": w.user("owner")})),
        after=decline_outsider,
    ),
    Row("GET", "/api/v1/friends/requests", EVERYONE),
    Row(
        "POST",
        "/api/v1/friends/requests/{request_id}/accept",
        who("not_found", owner=OK, nonfriend="forbidden"),
        request_call,
        after=unfriend_nonfriend,
    ),
    Row(
        "POST",
        "/api/v1/friends/requests/{request_id}/decline",
        who("not_found", owner=OK, nonfriend="forbidden"),
        request_call,
    ),
    # -- messages ---------------------------------------------------------------------------------
    Row("POST", "/api/v1/messages", MEMBERS_OK_FORBIDDEN, msg(lambda w: {"conv": w.conv_g}), label="group"),
    Row(
        "POST",
        "/api/v1/messages",
        who("not_friends", member=OK, admin=OK, former=OK, owner="invalid_field"),
        msg(lambda w: {"to": w.user("owner")}),
        label="private",
    ),
    Row(
        "POST",
        "/api/v1/messages",
        who("forbidden", member=OK, owner=OK),
        msg(lambda w: {"conv": w.conv_p}),
        label="private by conv id",
    ),
    Row("GET", "/api/v1/conversations", EVERYONE),
    Row(
        "GET",
        "/api/v1/conversations/{conv}/messages",
        MEMBERS_OK_FORBIDDEN,
        fixed(conv=lambda w: w.conv_g),
        label="group",
    ),
    Row("GET", "/api/v1/conversations/{conv}/messages", PAIR_OK, fixed(conv=lambda w: w.conv_p), label="private"),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/read",
        MEMBERS_OK_FORBIDDEN,
        body_of(fixed(conv=lambda w: w.conv_g), lambda w, a: {"seq": 1}),
        label="group",
    ),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/read",
        PAIR_OK,
        body_of(fixed(conv=lambda w: w.conv_p), lambda w, a: {"seq": 1}),
        label="private",
    ),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/messages/{seq}/recall",
        MEMBERS_OK_FORBIDDEN,
        recall_member_message,
        label="a member's group message (sender, owner, admins)",
    ),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/messages/{seq}/recall",
        who("forbidden", owner=OK),
        recall_owner_private,
        label="the owner's private message (sender only)",
    ),
    # -- message actions (issue 14): members act on what they can read; only the sender edits; pins by role ----
    Row(
        "POST",
        "/api/v1/conversations/{conv}/messages/{seq}/edit",
        who("forbidden", member=OK),
        on_member_message(lambda w, a: {"aid": secrets.token_hex(6), "text": "edited"}),
        label="the member's group message: its sender only",
    ),
    Row("GET", "/api/v1/conversations/{conv}/messages/{seq}/edits", MEMBERS_OK_FORBIDDEN, on_group_message()),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/messages/{seq}/reactions",
        MEMBERS_OK_FORBIDDEN,
        on_group_message({"emoji": "👍"}),
    ),
    Row(
        "GET",
        "/api/v1/conversations/{conv}/messages/{seq}/reactions",
        MEMBERS_OK_FORBIDDEN,
        on_group_message(emoji="👍"),
    ),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/messages/{seq}/pin",
        who("forbidden", admin=OK, owner=OK),
        on_group_message({"on": False}),
        label="group: owner and admins by default",
    ),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/messages/{seq}/pin",
        PAIR_OK,
        body_of(recall_owner_private, lambda w, a: {"on": False}),
        label="private: either side",
    ),
    Row("GET", "/api/v1/conversations/{conv}/pins", MEMBERS_OK_FORBIDDEN, fixed(conv=lambda w: w.conv_g), label="group"),
    Row("GET", "/api/v1/conversations/{conv}/pins", PAIR_OK, fixed(conv=lambda w: w.conv_p), label="private"),
    Row(
        "POST",
        "/api/v1/messages/forward",
        MEMBERS_OK_FORBIDDEN,
        body_of(
            fixed(),
            lambda w, a: {
                "aid": secrets.token_hex(6),
                "items": [{"conv": w.conv_g, "seq": w.seq_g}],
                "targets": [w.conv_g],
            },
        ),
        label="a group message into the group",
    ),
    Row(
        "POST",
        "/api/v1/conversations/{conv}/hide",
        MEMBERS_OK_FORBIDDEN,
        body_of(recall_member_message, lambda w, a: {"seqs": [1]}),
        label="group",
    ),
    Row("GET", "/api/v1/conversations/{conv}/hidden", MEMBERS_OK_FORBIDDEN, fixed(conv=lambda w: w.conv_g), label="group"),
    Row("GET", "/api/v1/conversations/{conv}/hidden", PAIR_OK, fixed(conv=lambda w: w.conv_p), label="private"),
    # -- data lifecycle (retention, exports, closing an account) ------------------------------------
    Row("GET", "/api/v1/conversations/{conv}/retention", MEMBERS_OK_FORBIDDEN, fixed(conv=lambda w: w.conv_g), label="group"),
    Row("GET", "/api/v1/conversations/{conv}/retention", PAIR_OK, fixed(conv=lambda w: w.conv_p), label="private"),
    Row(
        "PUT",
        "/api/v1/conversations/{conv}/retention",
        who("forbidden", owner=OK),
        body_of(fixed(conv=lambda w: w.conv_g), lambda w, a: {"days": None}),
        label="group: its owner",
    ),
    Row(
        "PUT",
        "/api/v1/conversations/{conv}/retention",
        who("forbidden"),
        body_of(fixed(conv=lambda w: w.conv_p), lambda w, a: {"days": None}),
        label="private: admins only, through /admin",
    ),
    Row("POST", "/api/v1/exports", EVERYONE),
    Row("GET", "/api/v1/exports", EVERYONE),
    Row("GET", "/api/v1/exports/{export_id}", who("not_found", owner=OK), owner_export),
    # The download's authorization is the link's signature: without it, nobody gets anything.
    Row("GET", "/api/v1/exports/{export_id}/download", who("not_found", anonymous="not_found"), owner_export),
    # A wrong password everywhere: the row checks that closing an account wants a session and the password.
    Row("DELETE", "/api/v1/me", who("unauthorized"), lambda w, a: _const(Call(json={"password": "not-the-password"}))),

    # -- search (the canary check proves no one finds what they may not read) -----------------------
    Row("GET", "/api/v1/search", EVERYONE, lambda w, a: _const(Call(query={"q": "canary"})), label="all"),
    Row(
        "GET",
        "/api/v1/search",
        MEMBERS_OK_FORBIDDEN,
        lambda w, a: _const(Call(query={"q": "canary", "conv": w.conv_g})),
        label="group",
    ),
    Row(
        "GET",
        "/api/v1/search",
        PAIR_OK,
        lambda w, a: _const(Call(query={"q": "ca", "conv": w.conv_p})),
        label="private, short term",
    ),
    Row(
        "GET",
        "/api/v1/conversations/{conv}/messages/{seq}/around",
        MEMBERS_OK_FORBIDDEN,
        fixed(conv=lambda w: w.conv_g, seq=lambda w: w.seq_g),
        label="group",
    ),
    Row(
        "GET",
        "/api/v1/conversations/{conv}/messages/{seq}/around",
        PAIR_OK,
        fixed(conv=lambda w: w.conv_p, seq=1),
        label="private",
    ),
    # -- groups -----------------------------------------------------------------------------------
    Row("POST", "/api/v1/groups", EVERYONE, lambda w, a: _const(Call(json={"name": "mine"}))),
    Row("GET", "/api/v1/groups", EVERYONE),
    Row("GET", G, MEMBERS_OK, fixed(group_id=lambda w: w.group)),
    Row(
        "PATCH",
        G,
        who("not_found", member="forbidden", admin=OK, owner=OK),
        body_of(group_call(), lambda w, a: {"notice": "changed"}),
    ),
    Row("DELETE", G, who("not_found", member="forbidden", admin="forbidden", owner=OK), group_call()),
    Row("GET", G + "/members", MEMBERS_OK, fixed(group_id=lambda w: w.group)),
    Row("GET", G + "/members/online", MEMBERS_OK, fixed(group_id=lambda w: w.group)),
    Row(
        "POST",
        G + "/members",
        MEMBERS_OK,
        body_of(group_call(), lambda w, a: {"users": [w.user("guest")]}),
    ),
    Row(
        "DELETE",
        G + "/members/{user_id}",
        MEMBERS_OK,  # the member's own row is a quit
        group_call(user_id=lambda w, a: w.user("member")),
        label="kick a member",
    ),
    Row(
        "DELETE",
        G + "/members/{user_id}",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        group_call(user_id=lambda w, a: w.user("admin")),
        label="kick an admin",
    ),
    Row(
        "DELETE",
        G + "/members/{user_id}",
        who("not_found", member="forbidden", admin="forbidden", owner="forbidden"),
        group_call(user_id=lambda w, a: w.user("owner")),
        label="kick the owner",
    ),
    Row(
        "POST",
        G + "/owner",
        who("not_found", member="forbidden", admin="forbidden", owner=OK),
        body_of(group_call(), lambda w, a: {"user": w.user("member")}),
    ),
    Row(
        "PUT",
        G + "/admins/{user_id}",
        who("not_found", member="forbidden", admin="forbidden", owner=OK),
        group_call(user_id=lambda w, a: w.user("member")),
    ),
    Row(
        "DELETE",
        G + "/admins/{user_id}",
        who("not_found", member="forbidden", admin="forbidden", owner=OK),
        group_call(user_id=lambda w, a: w.user("admin")),
    ),
    Row(
        "POST",
        G + "/mutes",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        body_of(group_call(), lambda w, a: {"user": w.user("member"), "seconds": 60}),
    ),
    Row(
        "POST",
        G + "/mute_all",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        body_of(group_call(), lambda w, a: {"muted": True}),
    ),
    Row("PATCH", G + "/me", MEMBERS_OK, body_of(group_call(), lambda w, a: {"dnd": True})),
    Row(
        "GET",
        G + "/messages/{seq}/receipts",
        MEMBERS_OK,
        fixed(group_id=lambda w: w.group, seq=lambda w: w.seq_g),
    ),
    # -- media ------------------------------------------------------------------------------------
    Row("GET", "/api/v1/uploads/usage", EVERYONE),
    Row("POST", "/api/v1/uploads", EVERYONE, upload_call),
    Row(
        "GET",
        "/api/v1/uploads/{upload_id}",
        MEMBERS_OK,
        fixed(upload_id=lambda w: w.upload_g["upload"]),
        label="sent in the group",
    ),
    Row(
        "GET",
        "/api/v1/uploads/{upload_id}",
        who("not_found", member=OK, owner=OK),
        fixed(upload_id=lambda w: w.upload_p["upload"]),
        label="sent in the private conversation",
    ),
    Row(
        "GET",
        "/api/v1/uploads/{upload_id}",
        who("not_found", owner=OK),
        fixed(upload_id=lambda w: w.upload_priv["upload"]),
        label="never sent",
    ),
    Row(
        "GET",
        "/api/v1/uploads/{upload_id}/thumb",
        MEMBERS_OK,
        fixed(upload_id=lambda w: w.image_g["upload"]),
    ),
    # -- access: invites, join links and requests, directory, reports (issue 20) -------------------
    Row("GET", "/api/v1/server", who(OK, anonymous=OK)),
    Row("GET", "/api/v1/me/access", EVERYONE),
    # User invites are off by default: only the server admin may invite.
    Row("POST", "/api/v1/invites", who("forbidden", admin=OK), lambda w, a: _const(Call(json={"max_uses": 1}))),
    Row("GET", "/api/v1/invites", EVERYONE),
    Row("DELETE", "/api/v1/invites/{code}", who("not_found", admin=OK), lambda w, a: admin_invite(w)),
    Row("GET", "/api/v1/groups/directory", EVERYONE, lambda w, a: _const(Call(query={"q": "team"}))),
    Row("POST", G + "/join", EVERYONE, join_settings(public=True)),
    Row("GET", G + "/links", who("not_found", member="forbidden", admin=OK, owner=OK), fixed(group_id=lambda w: w.group)),
    Row(
        "POST",
        G + "/links",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        body_of(group_call(), lambda w, a: {"max_uses": 5}),
    ),
    Row("DELETE", G + "/links/{code}", who("not_found", member="forbidden", admin=OK, owner=OK), link_call(False)),
    Row("GET", "/api/v1/links/{code}", EVERYONE, link_call(False)),  # a card: never the group's notice
    Row("POST", "/api/v1/links/{code}/join", EVERYONE, link_call(True)),
    Row(
        "GET",
        G + "/requests",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        join_settings(join_approval=True),
    ),
    Row(
        "POST",
        G + "/requests/{request_id}/approve",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        join_request_call,
    ),
    Row(
        "POST",
        G + "/requests/{request_id}/decline",
        who("not_found", member="forbidden", admin=OK, owner=OK),
        join_request_call,
    ),
    Row(
        "POST",
        "/api/v1/reports",
        who(OK, owner="invalid_field"),  # nobody reports themselves
        lambda w, a: _const(Call(json={"kind": "user", "target": str(w.user("owner")), "reason": "spam"})),
    ),
    Row("GET", "/api/v1/reports", EVERYONE),
    # -- operations -------------------------------------------------------------------------------
    Row("GET", "/healthz", who(OK, anonymous=OK)),
]


async def _const(call: Call) -> Call:
    return call


def admin_row(method: str, path: str) -> Row:
    """Server administration: the administrator gets past authorization, everyone else 403."""

    async def prepare(world: World, actor: str) -> Call:
        victim = HubbubClient(world.url)
        await victim.register(f"victim{next(_names)}", PASSWORD)
        world.c[f"victim-{victim.user_id}"] = victim
        params = {name: victim.user_id for name in _path_params(path)}
        return Call(params=params, json={} if method in ("POST", "PUT", "PATCH") else None)

    return Row(method, path, who("forbidden", admin=PASS), prepare, label="admin")


def _path_params(path: str) -> list[str]:
    import re

    return re.findall(r"{(\w+)}", path)


# -- the run --------------------------------------------------------------------------------------
async def call(world: World, http: aiohttp.ClientSession, row: Row, actor: str) -> tuple[int, str, Any]:
    prepared = await row.prepare(world, actor) if row.prepare is not None else Call()
    path = row.path.format(**prepared.params)
    headers = {}
    token = prepared.token or (world.c[actor].access_token if actor != "anonymous" else None)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    kwargs: dict[str, Any] = {"headers": headers, "params": prepared.query}
    if prepared.data is not None:
        kwargs["data"] = prepared.data
    elif prepared.json is not None:
        kwargs["json"] = prepared.json
    async with http.request(row.method, world.url + path, **kwargs) as resp:
        text = (await resp.read()).decode(errors="replace")
        parsed: Any = None
        if resp.content_type == "application/json" and text:
            import json

            parsed = json.loads(text)
        return resp.status, text, parsed


def verdict(expected: str, status: int, parsed: Any, errors: dict[str, int | None]) -> str | None:
    code = parsed.get("error", {}).get("code") if isinstance(parsed, dict) else None
    if expected == OK:
        return None if 200 <= status < 300 else f"expected success, got {status} {code}"
    if expected == PASS:
        if 200 <= status < 300:
            return None
        if status in (401, 403) or code not in errors:
            return f"expected to pass authorization, got {status} {code}"
        return None
    if code != expected:
        return f"expected {expected}, got {status} {code}"
    if errors.get(code) != status:
        return f"{code} came with HTTP {status}, docs/protocol.md says {errors.get(code)}"
    return None


def leaks(world: World, actor: str, text: str) -> list[str]:
    return [c for c, entitled in world.canaries.items() if c in text and actor not in entitled]


async def test_every_route_by_every_caller(make_node):
    node = await make_node(**RELAXED)
    url = base_url(node)
    errors = documented_errors()
    world = World(url)
    await world.build()
    failures: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/openapi.json") as resp:
                spec = await resp.json()
            covered = {(r.method, r.path) for r in ROWS}
            rows = list(ROWS)
            for path, ops in spec["paths"].items():
                for method in ops:
                    key = (method.upper(), path)
                    if key in covered:
                        continue
                    if path.startswith("/api/v1/admin/"):
                        rows.append(admin_row(method.upper(), path))
                    else:
                        failures.append(f"{method.upper()} {path}: no row in the authorization matrix")
            documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
            failures += [f"{m} {p}: a row for a route the server does not have" for m, p in covered - documented]
            for row in rows:
                for actor in ACTORS:
                    status, text, parsed = await call(world, http, row, actor)
                    where = f"{row.method} {row.path}{f' ({row.label})' if row.label else ''} as {actor}"
                    problem = verdict(row.expect[actor], status, parsed, errors)
                    if problem:
                        failures.append(f"{where}: {problem}")
                    if leaked := leaks(world, actor, text):
                        failures.append(f"{where}: leaked {leaked}")
                    if problem is None and 200 <= status < 300 and row.after is not None:
                        await row.after(world, actor, parsed)
    finally:
        await world.close()
    assert not failures, "\n".join(failures)


# -- WebSocket ------------------------------------------------------------------------------------
class Socket:
    """A raw WebSocket that keeps every frame it received (for the leak check)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[str] = []
        self.pushes: list[dict[str, Any]] = []
        self._rids = itertools.count(1)

    async def request(self, frame: dict[str, Any], timeout: float = 5) -> dict[str, Any] | None:
        """Send a frame (with a rid) and return its reply; for typing (no rid), the error if one comes."""
        if frame["type"] == "typing":
            # Typing has no reply and no rid: an error, if any, comes within moments.
            await self.ws.send_json(frame)
            before = len(self.pushes)
            await self.drain(0.3)
            errors = [p for p in self.pushes[before:] if p["type"] == "error"]
            return errors[0] if errors else None
        rid = f"q{next(self._rids)}"
        await self.ws.send_json({**frame, "rid": rid})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            msg = await self.ws.receive(timeout=max(0.01, deadline - loop.time()))
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return {"type": "closed", "close": self.ws.close_code}
            self.seen.append(msg.data)
            reply = msg.json()
            if reply.get("rid") == rid:
                return dict(reply)
            self.pushes.append(reply)

    async def drain(self, seconds: float) -> None:
        try:
            while True:
                msg = await self.ws.receive(timeout=seconds)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    return
                self.seen.append(msg.data)
                self.pushes.append(msg.json())
        except TimeoutError:
            return


async def open_socket(http: aiohttp.ClientSession, url: str, token: str | None) -> Socket:
    ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
    sock = Socket(ws)
    if token is not None:
        reply = await sock.request({"type": "auth", "token": token, "terminal": "desktop"})
        assert reply is not None and reply["type"] == "auth_ok", reply
    return sock


WsPrepare = Callable[[World, str], Awaitable[dict[str, Any]]]


def frame(**fields: Callable[[World], Any] | Any) -> WsPrepare:
    async def prepare(world: World, actor: str) -> dict[str, Any]:
        return {k: v(world) if callable(v) else v for k, v in fields.items()}

    return prepare


async def ws_edit_member(world: World, actor: str) -> dict[str, Any]:
    ack = await world.send("member", {"conv": world.conv_g}, "to be edited")
    return {"type": "edit", "aid": secrets.token_hex(6), "conv": world.conv_g, "seq": ack["seq"], "text": "edited"}


async def ws_recall_member(world: World, actor: str) -> dict[str, Any]:
    ack = await world.send("member", {"conv": world.conv_g}, "to be recalled")
    return {"type": "recall", "conv": world.conv_g, "seq": ack["seq"]}


def ws_send(dest: Callable[[World], dict[str, Any]]) -> WsPrepare:
    async def prepare(world: World, actor: str) -> dict[str, Any]:
        return {"type": "send", "cmid": secrets.token_hex(8), "msg_type": "text", "body": {"text": "hi"}, **dest(world)}

    return prepare


async def call_devices(world: World) -> tuple[HubbubClient, HubbubClient]:
    """The owner's and the member's phones (the matrix sockets are their "desktop" devices; the owner's "web"
    slot is left for the presence check below)."""
    if not hasattr(world, "owner_web"):
        for actor in ("owner", "member"):
            client = HubbubClient(world.url, terminal="mobile")
            await client.login(world.c[actor].user["username"], PASSWORD)  # type: ignore[index]
            await client.connect(sync=False)
            setattr(world, f"{actor}_web", client)
    return world.owner_web, world.member_web  # type: ignore[attr-defined]


async def end_calls(world: World) -> None:
    """End whatever the previous call row left: every call ringing the owner, and the member's call."""
    owner_web, member_web = await call_devices(world)
    ringing = set()
    while not owner_web.events.empty():
        pushed = owner_web.events.get_nowait()
        if pushed["type"] == "call_incoming":
            ringing.add(pushed["call"]["id"])
    for call_id in ringing:
        with contextlib.suppress(ApiError):
            await owner_web.request({"type": "call_reject", "call": call_id})
    if live := getattr(world, "live_call", None):
        with contextlib.suppress(ApiError):
            await member_web.request({"type": "call_cancel", "call": live})
        world.live_call = None  # type: ignore[attr-defined]


async def ws_call_invite(world: World, actor: str) -> dict[str, Any]:
    await end_calls(world)
    return {"type": "call_invite", "to": world.user("owner"), "media": "video"}


def ws_call(frame_type: str, *, answered: bool = False, **fields: Any) -> WsPrepare:
    """A fresh call from the member's phone to the owner (answered on the owner's phone if asked),
    and a ``frame_type`` frame about it: only the two parties may act on it, and signalling only from the two
    devices in the call (so every matrix socket, a third device, gets ``forbidden`` or ``not_found``)."""

    async def prepare(world: World, actor: str) -> dict[str, Any]:
        await end_calls(world)
        owner_web, member_web = await call_devices(world)
        invited = await member_web.request({"type": "call_invite", "to": world.user("owner"), "media": "video"})
        call_id = invited["call"]["id"]
        world.live_call = call_id  # type: ignore[attr-defined]
        if answered:
            await owner_web.request({"type": "call_accept", "call": call_id})
        return {"type": frame_type, "call": call_id, **fields}

    return prepare


PARTIES = {"owner": OK, "member": OK}


#: (label, frame, expected reply type for the allowed, expectations per actor). "anonymous" is a socket that
#: did not authenticate: every frame but auth gets not_authenticated and the socket is closed with 4401.
NOT_AUTH = "not_authenticated"
WS_ROWS: list[tuple[str, WsPrepare, str, dict[str, str]]] = [
    ("ping", frame(type="ping"), "pong", who(OK, anonymous=NOT_AUTH)),
    ("auth again", frame(type="auth", token="x", terminal="web"), "", who("bad_request", anonymous="unauthorized")),
    ("send group", ws_send(lambda w: {"conv": w.conv_g}), "ack", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    (
        "send private",
        ws_send(lambda w: {"to": w.user("owner")}),
        "ack",
        who("not_friends", anonymous=NOT_AUTH, member=OK, admin=OK, former=OK, owner="invalid_field"),
    ),
    ("sync", frame(type="sync"), "sync_result", who(OK, anonymous=NOT_AUTH)),
    ("pull group", frame(type="pull", conv=lambda w: w.conv_g, after_seq=0), "messages", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    ("pull private", frame(type="pull", conv=lambda w: w.conv_p, after_seq=0), "messages", who("forbidden", anonymous=NOT_AUTH, member=OK, owner=OK)),
    ("history group", frame(type="history", conv=lambda w: w.conv_g), "messages", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    ("history private", frame(type="history", conv=lambda w: w.conv_p), "messages", who("forbidden", anonymous=NOT_AUTH, member=OK, owner=OK)),
    ("read group", frame(type="read", conv=lambda w: w.conv_g, seq=1), "ok", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    ("read private", frame(type="read", conv=lambda w: w.conv_p, seq=1), "ok", who("forbidden", anonymous=NOT_AUTH, member=OK, owner=OK)),
    ("recall", ws_recall_member, "ok", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    ("typing private", frame(type="typing", conv=lambda w: w.conv_p), "", who("forbidden", anonymous=NOT_AUTH, member=OK, owner=OK)),
    ("receipts", frame(type="receipts", conv=lambda w: w.conv_g, seq=lambda w: w.seq_g), "receipts_result", who("not_found", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    # -- message actions (issue 14) ----------------------------------------------------------------------
    ("edit", ws_edit_member, "ok", who("forbidden", anonymous=NOT_AUTH, member=OK)),
    ("react", frame(type="react", conv=lambda w: w.conv_g, seq=lambda w: w.seq_g, emoji="👍"), "ok", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    ("pin", frame(type="pin", conv=lambda w: w.conv_g, seq=lambda w: w.seq_g, on=False), "ok", who("forbidden", anonymous=NOT_AUTH, admin=OK, owner=OK)),
    (
        "forward",
        frame(type="forward", aid=lambda w: secrets.token_hex(6), items=lambda w: [{"conv": w.conv_g, "seq": w.seq_g}], targets=lambda w: [w.conv_g]),
        "forwarded",
        who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK),
    ),
    ("hide", frame(type="hide", conv=lambda w: w.conv_g, seqs=[1]), "ok", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    ("typing group", frame(type="typing", conv=lambda w: w.conv_g), "", who("forbidden", anonymous=NOT_AUTH, member=OK, admin=OK, owner=OK)),
    # -- calls: friends may call; a call's frames are for its two parties, signalling for its two devices ----
    ("call_invite", ws_call_invite, "call_invited", who("not_friends", anonymous=NOT_AUTH, former=OK, member=OK, admin=OK, owner="invalid_field")),
    ("call_ring", ws_call("call_ring"), "ok", who("not_found", anonymous=NOT_AUTH, owner=OK, member="forbidden")),
    ("call_accept", ws_call("call_accept"), "ok", who("not_found", anonymous=NOT_AUTH, owner=OK, member="forbidden")),
    ("call_reject", ws_call("call_reject"), "ok", who("not_found", anonymous=NOT_AUTH, owner=OK, member="forbidden")),
    ("call_cancel", ws_call("call_cancel"), "ok", who("not_found", anonymous=NOT_AUTH, member=OK, owner="forbidden")),
    ("call_hangup ringing", ws_call("call_hangup"), "ok", who("not_found", anonymous=NOT_AUTH, **PARTIES)),
    ("call_hangup answered", ws_call("call_hangup", answered=True), "ok", who("not_found", anonymous=NOT_AUTH, owner="forbidden", member="forbidden")),
    ("call_resume", ws_call("call_resume", answered=True), "ok", who("not_found", anonymous=NOT_AUTH, owner="forbidden", member="forbidden")),
    ("call_sdp", ws_call("call_sdp", answered=True, kind="offer", sdp="v=0"), "ok", who("not_found", anonymous=NOT_AUTH, owner="forbidden", member="forbidden")),
    ("call_ice", ws_call("call_ice", answered=True, candidate={"candidate": ""}), "ok", who("not_found", anonymous=NOT_AUTH, owner="forbidden", member="forbidden")),
]


async def test_every_frame_by_every_caller(make_node):
    from hubbub.protocol.frames import AnyClientFrame

    node = await make_node(**RELAXED)
    url = base_url(node)
    errors = documented_errors()
    world = World(url)
    await world.build()
    failures: list[str] = []
    tags = {t.__struct_config__.tag for t in AnyClientFrame.__args__}  # type: ignore[attr-defined]
    covered = {label.split()[0] for label, *_ in WS_ROWS} | {"auth"}
    failures += [f"frame {t!r}: no row in the matrix" for t in sorted(tags - covered)]
    try:
        async with aiohttp.ClientSession() as http:
            sockets = {
                a: await open_socket(http, url, world.c[a].access_token) for a in ACTORS if a != "anonymous"
            }
            for label, prepare, reply_type, expect in WS_ROWS:
                for actor in ACTORS:
                    frame_ = await prepare(world, actor)
                    if actor == "anonymous":
                        sock = await open_socket(http, url, None)
                    else:
                        sock = sockets[actor]
                    reply = await sock.request(frame_)
                    where = f"ws {label} as {actor}"
                    wanted = expect[actor]
                    if wanted == OK:
                        if reply_type and (reply is None or reply["type"] != reply_type):
                            failures.append(f"{where}: expected {reply_type}, got {reply}")
                        elif not reply_type and reply is not None:
                            failures.append(f"{where}: expected no reply, got {reply}")
                    elif reply is None or reply.get("code") != wanted:
                        failures.append(f"{where}: expected {wanted}, got {reply}")
                    elif wanted not in errors:
                        failures.append(f"{where}: {wanted} is not in docs/protocol.md")
                    if actor == "anonymous":
                        closing = await sock.ws.receive(timeout=5)
                        if sock.ws.close_code != 4401 and closing.data != 4401:
                            failures.append(f"{where}: expected close 4401, got {sock.ws.close_code}")
                        await sock.ws.close()
                    if leaked := leaks(world, actor, "".join(sock.seen)):
                        failures.append(f"{where}: leaked {leaked}")

            # Presence goes to friends only: the owner comes online on another terminal.
            owner_web = await open_socket(http, url, None)
            await owner_web.ws.send_json({"type": "auth", "token": world.c["owner"].access_token, "terminal": "web"})
            fresh_secret = world.canary("LIVE", "owner", "admin", "member")
            await world.send("owner", {"conv": world.conv_g}, fresh_secret)
            for sock in sockets.values():
                await sock.drain(0.3)
            owner_id = world.user("owner")
            for actor, sock in sockets.items():
                got = [p for p in sock.pushes if p["type"] == "presence" and p["user"] == owner_id]
                should = actor in ("admin", "member", "former")  # the owner's friends
                if bool(got) != should:
                    failures.append(f"presence of the owner to {actor}: expected {should}, got {got}")
                if leaked := leaks(world, actor, "".join(sock.seen)):
                    failures.append(f"ws pushes to {actor}: leaked {leaked}")
            for sock in [*sockets.values(), owner_web]:
                await sock.ws.close()
    finally:
        await world.close()
    assert not failures, "\n".join(failures)


# -- banned users -----------------------------------------------------------------------------------
async def test_a_banned_user_is_refused_on_every_route_and_the_socket(make_node):
    """A ban revokes every session: the banned user's token opens nothing, whatever the route (the rows
    above need a live session for every actor, so the banned caller is tried here, on every route)."""
    import re

    import pytest

    from hubbub.client import ApiError
    from hubbub.platform.routing import ROUTES

    node = await make_node(**RELAXED)
    url = base_url(node)
    admin, victim = HubbubClient(url), HubbubClient(url)
    try:
        await admin.register(f"banadmin{next(_names)}", PASSWORD)
        await victim.register(f"banned{next(_names)}", PASSWORD)
        token = victim.access_token
        await admin.api("PUT", f"/api/v1/admin/users/{victim.user_id}/ban", {"reason": "matrix"})
        values = {"conv": "g:1", "upload_id": "x", "code": "abc"}
        failures = []
        async with aiohttp.ClientSession() as http:
            for r in ROUTES:
                if not r.auth:
                    continue
                path = re.sub(r"{(\w+)}", lambda m: values.get(m.group(1), "1"), r.path)
                headers = {"Authorization": f"Bearer {token}"}
                async with http.request(r.method, url + path, headers=headers, json={}) as resp:
                    body = await resp.json(content_type=None)
                    code = (body or {}).get("error", {}).get("code")
                    if (resp.status, code) != (401, "token_revoked"):
                        failures.append(f"{r.method} {r.path}: {resp.status} {code}")
            ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
            await ws.send_json({"type": "auth", "token": token, "terminal": "web", "rid": "a"})
            reply = await ws.receive(timeout=5)
            if reply.type is aiohttp.WSMsgType.TEXT and reply.json().get("code") != "token_revoked":
                failures.append(f"ws auth: {reply.data}")
            await ws.close()
        with pytest.raises(ApiError) as login:
            await victim.login(victim.user["username"], PASSWORD)  # type: ignore[index]
        assert login.value.code == "forbidden"
        assert not failures, "\n".join(failures)
    finally:
        await admin.close()
        await victim.close()
