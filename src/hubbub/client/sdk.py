"""Implementation of :class:`HubbubClient`; see the package docstring."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from hubbub.protocol.close_codes import Close, is_terminal

#: Closes after which the node itself is gone or going (the socket dropped, the node shuts down or drains):
#: the reconnect tries the next node of the list.
_NODE_GONE = frozenset({Close.GOING_AWAY, 1006, Close.DRAINING})


class ApiError(Exception):
    """A refusal from the server: ``code`` is the machine-readable code of docs/protocol.md."""

    def __init__(self, code: str, message: str, status: int = 0, retry_after: float | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after


class ClosedError(Exception):
    """The connection ended for good (a terminal close code, 4000-4499, or ``close()``)."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"connection closed ({code})")
        self.code = code


#: Notices that change another message of the conversation (``body.seq``).
_EVENT_TYPES = ("recall", "edit", "reaction")


def _apply_reaction(target: dict[str, Any], user: int, event: dict[str, Any]) -> None:
    """A ``reaction`` event on the message it names: the emoji's count as the server gives it."""
    reactions = [dict(r) for r in target["body"].get("reactions", [])]
    entry = next((r for r in reactions if r["emoji"] == event["emoji"]), None)
    if entry is None:
        entry = {"emoji": event["emoji"], "count": 0, "users": []}
        reactions.append(entry)
    entry["count"] = event["count"]
    users = [u for u in entry["users"] if u != user]
    entry["users"] = [*users, user][:10] if event["on"] else users
    target["body"] = {**target["body"], "reactions": [r for r in reactions if r["count"] > 0]}
    if not target["body"]["reactions"]:
        del target["body"]["reactions"]


class ConversationLog:
    """What the client holds of one conversation: messages by seq, and how far it holds them contiguously."""

    def __init__(self) -> None:
        self.messages: dict[int, dict[str, Any]] = {}
        self.have = 0  # every seq <= have is held (or was skipped as a hole)

    def add(self, msg: dict[str, Any]) -> bool:
        """Keep a message; False if it was already held. Recall notices blank their target; edit and
        reaction events change it (docs/protocol.md, "Message actions")."""
        seq = msg["seq"]
        if seq in self.messages:
            return False
        self.messages[seq] = msg
        kind = msg.get("type")
        target = self.messages.get(msg["body"].get("seq")) if kind in _EVENT_TYPES else None
        if target is not None and kind == "recall":
            target["recalled"] = True
            target["body"] = {}
        elif target is not None and kind == "edit" and msg["body"]:
            edit = msg["body"]
            body = {k: v for k, v in target["body"].items() if k not in ("mentions", "mention_all")}
            body.update({k: v for k, v in edit.items() if k != "seq"})
            target["body"] = body
        elif target is not None and kind == "reaction":
            _apply_reaction(target, msg["sender"], msg["body"])
        while self.have + 1 in self.messages:
            self.have += 1
        return True

    def purge_through(self, floor: int) -> None:
        """Retention removed everything at or below ``floor`` (the conversation's ``floor`` in sync): drop it
        and count it as held, so nothing waits for those seqs."""
        for seq in [s for s in self.messages if s <= floor]:
            del self.messages[seq]
        self.have = max(self.have, floor)
        while self.have + 1 in self.messages:
            self.have += 1

    def ordered(self) -> list[dict[str, Any]]:
        return [self.messages[s] for s in sorted(self.messages)]


class HubbubClient:
    def __init__(
        self, base_url: str | Sequence[str], *, terminal: str = "web", request_timeout: float = 10.0
    ) -> None:
        """``base_url`` may be a list of cluster nodes: the client moves to the next one when a connection
        fails (a node died or drains) and resumes there with a sync."""
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        self.urls = [u.rstrip("/") for u in urls]
        self.base_url = self.urls[0]
        self.terminal = terminal
        self.request_timeout = request_timeout
        self.http = aiohttp.ClientSession()
        self.user: dict[str, Any] | None = None
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.convs: dict[str, ConversationLog] = {}
        self.conversations: dict[str, dict[str, Any]] = {}
        self.events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.close_code: int | None = None
        self.connects = 0
        self.auto_reconnect = True
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._rids = itertools.count(1)
        self._waiting: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._pending_futures: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._heartbeat = 25.0
        self._sync_on_connect = True
        self._filling: set[str] = set()
        self._refill: set[str] = set()
        #: Background pulls made (gap fills and hot-group news), for tests and benchmarks.
        self.pulls = 0

    async def __aenter__(self) -> HubbubClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def user_id(self) -> int:
        assert self.user is not None, "log in first"
        return int(self.user["id"])

    # -- HTTP -------------------------------------------------------------------------------------
    async def api(self, method: str, path: str, body: Any = None, *, auth: bool = True, **query: Any) -> Any:
        headers = {}
        if auth and self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        params = {k: str(v) for k, v in query.items() if v is not None}
        async with self.http.request(
            method, self.base_url + path, json=body, headers=headers, params=params
        ) as resp:
            if resp.status == 204:
                return None
            data = await resp.json(content_type=None)
            if resp.status >= 400:
                err = (data or {}).get("error", {})
                raise ApiError(
                    err.get("code", "unknown"), err.get("message", ""), resp.status, err.get("retry_after")
                )
            return data

    def _take_tokens(self, tokens: dict[str, Any]) -> dict[str, Any]:
        self.user = tokens["user"]
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens["refresh_token"]
        return tokens

    async def register(
        self, username: str, password: str, nickname: str | None = None, invite: str | None = None
    ) -> dict[str, Any]:
        body = {"username": username, "password": password, "nickname": nickname}
        if invite is not None:  # a registration invite code (servers in ``invite`` mode)
            body["invite"] = invite
        return self._take_tokens(await self.api("POST", "/api/v1/auth/register", body, auth=False))

    async def login(self, username: str, password: str) -> dict[str, Any]:
        body = {"username": username, "password": password}
        return self._take_tokens(await self.api("POST", "/api/v1/auth/login", body, auth=False))

    async def refresh(self) -> dict[str, Any]:
        body = {"refresh_token": self.refresh_token}
        return self._take_tokens(await self.api("POST", "/api/v1/auth/refresh", body, auth=False))

    async def befriend(self, other: HubbubClient, note: str = "") -> None:
        """Make this user and ``other`` friends (request + accept), for tests and bots."""
        request = await self.api("POST", "/api/v1/friends/requests", {"to": other.user_id, "note": note})
        if request["status"] == "pending":
            await other.api("POST", f"/api/v1/friends/requests/{request['id']}/accept")

    # -- WebSocket --------------------------------------------------------------------------------
    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://").replace("https://", "wss://") + "/ws"

    async def connect(self, *, sync: bool = True, timeout: float = 10.0) -> None:
        """Connect, authenticate and (by default) sync; reconnects by itself afterwards."""
        self._closed = False
        self._sync_on_connect = sync
        self._ready.clear()
        self._runner = asyncio.get_running_loop().create_task(self._run())
        ready = asyncio.ensure_future(self._ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._runner}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            if self._runner.done():
                self._runner.result()
            raise TimeoutError("could not connect")

    async def _run(self) -> None:
        delay = 0.5
        while not self._closed:
            try:
                await self._session()
                delay = 0.5
            except ClosedError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError):
                self._next_node()
            if self._closed or not self.auto_reconnect:
                break
            if self.close_code in _NODE_GONE:
                self._next_node()
            # The range rule of docs/protocol.md ("Close codes"), so codes added later are classified too.
            if is_terminal(self.close_code):
                if self.close_code == Close.UNAUTHORIZED and self.refresh_token:
                    with contextlib.suppress(ApiError, aiohttp.ClientError):
                        await self.refresh()
                        continue
                raise ClosedError(self.close_code)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 30.0)

    def _next_node(self) -> None:
        if len(self.urls) > 1:
            self.base_url = self.urls[(self.urls.index(self.base_url) + 1) % len(self.urls)]

    async def _session(self) -> None:
        async with self.http.ws_connect(self.ws_url, autoping=True, max_msg_size=0) as ws:
            self._ws = ws
            self.close_code = None
            await ws.send_json(
                {"type": "auth", "token": self.access_token, "terminal": self.terminal, "rid": "auth"}
            )
            beat: asyncio.Task[None] | None = None
            try:
                async for msg in ws:
                    if msg.type is not aiohttp.WSMsgType.TEXT:
                        continue
                    frame = msg.json()
                    if frame["type"] == "auth_ok":
                        self.connects += 1
                        self._heartbeat = float(frame["heartbeat"])
                        beat = asyncio.get_running_loop().create_task(self._beat(ws))
                        asyncio.get_running_loop().create_task(self._after_connect())
                    self._on_frame(frame)
            finally:
                self.close_code = ws.close_code
                self._ws = None
                self._ready.clear()
                if beat is not None:
                    beat.cancel()
                for future in self._waiting.values():
                    if not future.done():
                        future.set_exception(ConnectionResetError("connection lost"))
                self._waiting.clear()

    async def _beat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while not ws.closed:
            await asyncio.sleep(self._heartbeat)
            with contextlib.suppress(ConnectionError, RuntimeError):
                await ws.send_json({"type": "ping"})

    async def _after_connect(self) -> None:
        try:
            if self._sync_on_connect:
                await self.sync()
        except (TimeoutError, ApiError, ConnectionError):
            return
        self._ready.set()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        rid = frame.get("rid")
        if rid is not None and rid in self._waiting:
            future = self._waiting.pop(rid)
            if not future.done():
                if frame["type"] == "error":
                    future.set_exception(
                        ApiError(frame["code"], frame["message"], retry_after=frame.get("retry_after"))
                    )
                else:
                    future.set_result(frame)
            return
        kind = frame["type"]
        if kind == "msg":
            self._on_message(frame["msg"])
        elif kind == "news":
            # A hot group has news up to seq: pull what we miss (skip when we already have it).
            log = self.convs.setdefault(frame["conv"], ConversationLog())
            if frame["seq"] > log.have and self._ws is not None:
                self._schedule_fill(frame["conv"])
        elif kind == "hidden":  # deleted for me, on another terminal of mine (or this one)
            log = self.convs.setdefault(frame["conv"], ConversationLog())
            for seq in frame["seqs"]:
                if seq in log.messages:
                    log.messages[seq]["body"] = {"hidden": True}
        elif kind == "read":
            conv = self.conversations.setdefault(frame["conv"], {"conv": frame["conv"]})
            key = "read_seq" if self.user and frame["user"] == self.user["id"] else "peer_read_seq"
            conv[key] = max(conv.get(key, 0), frame["seq"])
        self.events.put_nowait(frame)

    def _on_message(self, msg: dict[str, Any]) -> None:
        log = self.convs.setdefault(msg["conv"], ConversationLog())
        gap = msg["seq"] > log.have + 1
        log.add(msg)
        if gap and self._ws is not None:
            self._schedule_fill(msg["conv"])

    def _schedule_fill(self, conv: str) -> None:
        """Pull a conversation in the background; one pull at a time per conversation, repeated if more
        news came in meanwhile."""
        if conv in self._filling:
            self._refill.add(conv)
            return
        self._filling.add(conv)
        asyncio.get_running_loop().create_task(self._fill(conv))

    async def _fill(self, conv: str) -> None:
        try:
            while True:
                self._refill.discard(conv)
                with contextlib.suppress(ApiError, ConnectionError, asyncio.TimeoutError):
                    await self.pull_all(conv)
                    self.pulls += 1
                if conv not in self._refill:
                    return
        finally:
            self._filling.discard(conv)

    async def request(self, frame: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a frame with a fresh rid and wait for its reply (an ``error`` reply raises ApiError)."""
        if self._ws is None:
            raise ConnectionError("not connected")
        rid = frame.get("rid") or f"r{next(self._rids)}"
        frame = {**frame, "rid": rid}
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        await self._ws.send_json(frame)
        try:
            return await asyncio.wait_for(future, timeout or self.request_timeout)
        finally:
            self._waiting.pop(rid, None)

    async def _raw_send(self, frame: dict[str, Any]) -> None:
        """(Re)send a send frame; its ack resolves ``_pending_futures[cmid]`` (a new future per connection)."""
        future = self._waiting.get(frame["rid"])
        if future is None or future.done():
            future = asyncio.get_running_loop().create_future()
            self._waiting[frame["rid"]] = future
            self._pending_futures[frame["cmid"]] = future
        if self._ws is not None:
            await self._ws.send_json(frame)

    async def send_text(
        self,
        text: str,
        *,
        to: int | None = None,
        conv: str | None = None,
        cmid: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Send until acknowledged, across reconnects, always with the same cmid; returns the ack."""
        return await self.send(
            {"msg_type": "text", "body": {"text": text}}, to=to, conv=conv, cmid=cmid, timeout=timeout
        )

    async def send(
        self,
        content: dict[str, Any],
        *,
        to: int | None = None,
        conv: str | None = None,
        cmid: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        cmid = cmid or uuid.uuid4().hex
        frame: dict[str, Any] = {"type": "send", "cmid": cmid, "rid": f"s-{cmid}", **content}
        if to is not None:
            frame["to"] = to
        if conv is not None:
            frame["conv"] = conv
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                await self._ready_or_connected(deadline)
                try:
                    await self._raw_send(frame)
                    future = self._pending_futures[cmid]
                    remaining = deadline - asyncio.get_running_loop().time()
                    ack = await asyncio.wait_for(asyncio.shield(future), max(0.01, remaining))
                except (ConnectionError, RuntimeError, aiohttp.ClientError):
                    await asyncio.sleep(0.05)
                    continue
                log = self.convs.setdefault(ack["conv"], ConversationLog())
                log.add(
                    {
                        "id": ack["id"],
                        "conv": ack["conv"],
                        "seq": ack["seq"],
                        "sender": self.user_id,
                        "type": frame["msg_type"],
                        "body": frame["body"],
                        "ts": ack["ts"],
                        "cmid": cmid,
                        "recalled": False,
                    }
                )
                return ack
        finally:
            self._pending_futures.pop(cmid, None)

    async def _ready_or_connected(self, deadline: float) -> None:
        while self._ws is None:
            if self._closed or (self._runner is not None and self._runner.done()):
                raise ClosedError(self.close_code)
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("not connected")
            await asyncio.sleep(0.05)

    async def sync(self) -> list[dict[str, Any]]:
        """The sync algorithm of docs/protocol.md: list conversations, pull what is missing."""
        result = await self.request({"type": "sync"})
        for conv in result["conversations"]:
            self.conversations[conv["conv"]] = conv
            log = self.convs.setdefault(conv["conv"], ConversationLog())
            log.purge_through(conv.get("floor", 0))
            if conv["max_seq"] > log.have:
                await self.pull_all(conv["conv"])
        return list(result["conversations"])

    async def pull_all(self, conv: str) -> None:
        log = self.convs.setdefault(conv, ConversationLog())
        while True:
            page = await self.request({"type": "pull", "conv": conv, "after_seq": log.have, "limit": 200})
            for msg in page["messages"]:
                log.add(msg)
            if page["messages"]:
                # Seqs are gap-free, so the last one returned is where the next page starts.
                log.have = max(log.have, page["messages"][-1]["seq"])
            if not page["has_more"]:
                return

    async def next_event(
        self,
        kind: str | None = None,
        timeout: float = 5.0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """The next pushed frame of a type (others are dropped while waiting)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = await asyncio.wait_for(self.events.get(), max(0.001, deadline - loop.time()))
            if (kind is None or frame["type"] == kind) and (where is None or where(frame)):
                return frame

    def history(self, conv: str) -> list[dict[str, Any]]:
        return self.convs.get(conv, ConversationLog()).ordered()

    async def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            if loop.time() > deadline:
                raise TimeoutError("condition not met")
            await asyncio.sleep(0.02)

    async def drop_connection(self) -> None:
        """Cut the socket as a network failure would (the client reconnects by itself)."""
        if self._ws is not None:
            await self._ws.close(code=4000)

    async def disconnect(self) -> None:
        """Close the socket and stay offline (``connect`` again to come back)."""
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            with contextlib.suppress(BaseException):
                await self._runner
            self._runner = None

    async def close(self) -> None:
        await self.disconnect()
        await self.http.close()
