"""Protocol fuzzing: malformed, truncated, oversized, wrongly typed and out-of-order input, over WebSocket and
HTTP. The server must never crash (no ``internal`` error, no 5xx), never hang a connection (every batch ends
with a ping that must be answered), close only with documented codes, and keep serving a healthy client.

Hypothesis draws *batches* (one example = dozens of frames), derandomized, so the run is a few hundred inputs
in a few seconds and the same on every machine. Longer: ``HUBBUB_FUZZ_EXAMPLES=200 pytest tests/security``.
"""

from __future__ import annotations

import json
import os
import secrets
from typing import Any
from urllib.parse import quote

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubbub.client import HubbubClient
from tests.conftest import PASSWORD, base_url
from tests.security.conftest import RELAXED, documented_close_codes, documented_errors

EXAMPLES = int(os.environ.get("HUBBUB_FUZZ_EXAMPLES", "6"))
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_FRAME = 4096
TYPES = ["auth", "ping", "send", "sync", "pull", "history", "read", "recall", "typing", "receipts"]
FIELDS = ["type", "rid", "token", "terminal", "cmid", "body", "msg_type", "to", "conv", "after_seq", "before_seq",
          "limit", "seq", "text", "mentions", "upload"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["g:1", "p:1:2", "p:2:1", "g:-1", "g:999999999999", "p:a:b", "x", "g:", "", "\u0000"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=4)),
    max_leaves=12,
)


@st.composite
def frames(draw: st.DrawFn, conv_ids: list[str]) -> bytes:
    """One frame's bytes: mostly a plausible object with hostile values, sometimes garbage."""
    kind = draw(st.sampled_from(["object", "object", "object", "wrong_type", "truncated", "garbage", "not_object"]))
    base: dict[str, Any] = {"type": draw(st.sampled_from([*TYPES, "nope", "", "AUTH"]))}
    base.update(draw(st.dictionaries(st.sampled_from(FIELDS[1:]), json_values, max_size=5)))
    if draw(st.booleans()):
        base["conv"] = draw(st.sampled_from(conv_ids))
    if kind == "wrong_type":
        base["type"] = draw(st.one_of(st.integers(), st.lists(st.text(max_size=3), max_size=2), st.none()))
    encoded = json.dumps(base).encode()
    if kind == "truncated":
        return encoded[: draw(st.integers(min_value=0, max_value=max(0, len(encoded) - 1)))]
    if kind == "garbage":
        return draw(st.binary(max_size=200))
    if kind == "not_object":
        return json.dumps(draw(json_values)).encode()
    return encoded


class Prober:
    """A raw socket that counts what came back; nothing it sends may make the server fail."""

    def __init__(self, http: aiohttp.ClientSession, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.token = token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.internal: list[dict[str, Any]] = []
        self.closes: list[int | None] = []
        self.undocumented: list[str] = []

    async def open(self, authenticate: bool) -> aiohttp.ClientWebSocketResponse:
        self.ws = await self.http.ws_connect(self.url.replace("http", "ws") + "/ws", max_msg_size=0)
        if authenticate:
            await self.ws.send_json({"type": "auth", "token": self.token, "terminal": "desktop"})
            reply = await self.ws.receive_json(timeout=10)
            assert reply["type"] == "auth_ok", reply
        return self.ws

    async def feed(self, batch: list[bytes], errors: dict[str, int | None]) -> None:
        ws = self.ws
        assert ws is not None
        for raw in batch:
            if ws.closed:
                break
            try:
                await (ws.send_bytes(raw) if raw[:1] == b"\xff" else ws.send_str(raw.decode(errors="replace")))
            except ConnectionError:
                break
        # Every batch ends with a ping: a server that still listens answers it; one that closed says why.
        rid = secrets.token_hex(4)
        if not ws.closed:
            try:
                await ws.send_json({"type": "ping", "rid": rid})
            except ConnectionError:
                pass
        while True:
            msg = await ws.receive(timeout=10)  # a hang fails the test here
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                self.closes.append(ws.close_code)
                return
            if msg.type is aiohttp.WSMsgType.ERROR:
                self.closes.append(ws.close_code)
                return
            frame = json.loads(msg.data)
            if frame.get("type") == "error":
                if frame.get("code") == "internal":
                    self.internal.append(frame)
                if frame.get("code") not in errors:
                    self.undocumented.append(frame.get("code"))
            if frame.get("type") == "pong" and frame.get("rid") == rid:
                return


async def healthy(alice: HubbubClient, bob: HubbubClient) -> None:
    """Another client is served as usual: a message goes through and arrives."""
    text = f"still here {secrets.token_hex(3)}"
    ack = await alice.send_text(text, to=bob.user_id, timeout=10)
    await bob.wait_until(lambda: any(m["id"] == ack["id"] for m in bob.history(ack["conv"])), timeout=10)


async def _world(make_node: Any) -> tuple[str, HubbubClient, HubbubClient, HubbubClient, list[str]]:
    node = await make_node(**RELAXED, max_frame_bytes=MAX_FRAME)
    url = base_url(node)
    alice, bob, mallory = HubbubClient(url), HubbubClient(url), HubbubClient(url)
    for client, name in ((alice, "fa"), (bob, "fb"), (mallory, "fm")):
        await client.register(f"{name}{secrets.token_hex(3)}", PASSWORD)
    await alice.befriend(bob)
    await alice.befriend(mallory)
    group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [bob.user_id, mallory.user_id]})
    await alice.connect()
    await bob.connect()
    a, b, m = alice.user_id, bob.user_id, mallory.user_id
    convs = [group["conv"], f"p:{min(a, b)}:{max(a, b)}", f"p:{min(a, m)}:{max(a, m)}", "g:424242"]
    return url, alice, bob, mallory, convs


async def test_websocket_frames(make_node):
    url, alice, bob, mallory, convs = await _world(make_node)
    errors = documented_errors()
    allowed_closes = documented_close_codes()
    try:
        async with aiohttp.ClientSession() as http:
            prober = Prober(http, url, mallory.access_token or "")
            batches: list[tuple[bool, list[bytes]]] = []

            @FUZZ
            @given(
                authenticate=st.booleans(),
                batch=st.lists(frames(convs), min_size=10, max_size=40),
                oversized=st.booleans(),
            )
            def collect(authenticate: bool, batch: list[bytes], oversized: bool) -> None:
                if oversized:
                    batch = [*batch, b'{"type":"ping","pad":"' + b"x" * MAX_FRAME + b'"}']
                batches.append((authenticate, batch))

            collect()
            assert batches
            for authenticate, batch in batches:
                await prober.open(authenticate)
                await prober.feed(batch, errors)
                if prober.ws is not None:
                    await prober.ws.close()
                await healthy(alice, bob)
            assert not prober.internal, prober.internal[:3]
            assert not prober.undocumented, prober.undocumented[:5]
            assert set(prober.closes) <= allowed_closes | {1000, None}, prober.closes
    finally:
        for client in (alice, bob, mallory):
            await client.close()


async def test_out_of_order_frames(make_node):
    """Frames before auth, auth twice, requests after a close: each gets its documented answer."""
    url, alice, bob, mallory, convs = await _world(make_node)
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
            await ws.send_json({"type": "sync", "rid": 1})
            reply = await ws.receive_json(timeout=5)
            assert (reply["code"], reply["rid"]) == ("not_authenticated", 1)
            await ws.receive(timeout=5)
            assert ws.close_code == 4401

            ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
            await ws.send_json({"type": "auth", "token": mallory.access_token, "terminal": "web"})
            assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
            await ws.send_json({"type": "auth", "token": mallory.access_token, "terminal": "web", "rid": 2})
            reply = await ws.receive_json(timeout=5)
            assert (reply["code"], reply["rid"]) == ("bad_request", 2)
            # A pull before any message, a read beyond the end, a recall of nothing: refusals, not crashes.
            for frame in (
                {"type": "pull", "conv": convs[0], "after_seq": 10**9},
                {"type": "read", "conv": convs[0], "seq": 10**9},
                {"type": "recall", "conv": convs[0], "seq": 10**9},
                {"type": "receipts", "conv": convs[1], "seq": 1},
            ):
                await ws.send_json({**frame, "rid": "x"})
                reply = await ws.receive_json(timeout=5)
                assert reply.get("code") != "internal", reply
            await ws.close()
            await healthy(alice, bob)
    finally:
        for client in (alice, bob, mallory):
            await client.close()


@st.composite
def http_inputs(draw: st.DrawFn, routes: list[tuple[str, str]]) -> tuple[str, str, bytes, dict[str, str]]:
    method, path = draw(st.sampled_from(routes))
    for name in ("group_id", "user_id", "request_id", "seq", "conv", "upload_id"):
        if "{" + name + "}" in path:
            value = draw(
                st.one_of(
                    st.sampled_from(["1", "0", "-1", "99999999999999999999", "g:1", "p:1:2", "abc", "%00", "1e3"]),
                    st.text(min_size=1, max_size=12),
                )
            )
            path = path.replace("{" + name + "}", quote(value, safe=""))
    kind = draw(st.sampled_from(["json", "json", "truncated", "garbage", "empty"]))
    if kind == "json":
        body = json.dumps(draw(json_values)).encode()
    elif kind == "truncated":
        full = json.dumps(draw(st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=4))).encode()
        body = full[: draw(st.integers(min_value=0, max_value=len(full)))]
    elif kind == "garbage":
        body = draw(st.binary(max_size=300))
    else:
        body = b""
    query = draw(st.dictionaries(st.sampled_from(["limit", "after_seq", "before_seq", "q", "after", "kind"]),
                                 st.text(max_size=8), max_size=3))
    return method, path, body, query


async def test_http_bodies_and_paths(make_node):
    url, alice, bob, mallory, _convs = await _world(make_node)
    errors = documented_errors()
    failures: list[str] = []
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/openapi.json") as resp:
                spec = await resp.json()
            routes = [
                (m.upper(), p)
                for p, ops in spec["paths"].items()
                for m in ops
                # Fuzzing must not log the fuzzer out or change its password (it would stop testing).
                if p.startswith("/api/") and p not in ("/api/v1/auth/logout", "/api/v1/auth/password")
            ]
            inputs: list[tuple[str, str, bytes, dict[str, str]]] = []

            @FUZZ
            @given(batch=st.lists(http_inputs(routes), min_size=30, max_size=30))
            def collect(batch: list[tuple[str, str, bytes, dict[str, str]]]) -> None:
                inputs.extend(batch)

            collect()
            headers = {"Authorization": f"Bearer {mallory.access_token}", "Content-Type": "application/json"}
            for method, path, body, query in inputs:
                async with http.request(method, url + path, data=body, params=query, headers=headers) as resp:
                    text = await resp.text(errors="replace")
                    where = f"{method} {path} {body[:60]!r} {query}"
                    if resp.status >= 500:
                        failures.append(f"{where}: {resp.status} {text[:200]}")
                    elif resp.status >= 400:
                        try:
                            code = json.loads(text)["error"]["code"]
                        except (ValueError, KeyError, TypeError):
                            failures.append(f"{where}: {resp.status} without an error object: {text[:100]}")
                            continue
                        if errors.get(code) != resp.status:
                            failures.append(f"{where}: {code} with {resp.status}, documented {errors.get(code)}")
            await healthy(alice, bob)
    finally:
        for client in (alice, bob, mallory):
            await client.close()
    assert not failures, "\n".join(failures[:30])
