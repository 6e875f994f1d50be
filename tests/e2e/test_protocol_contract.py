"""What docs/protocol.md promises a client written from it alone, pinned through real sockets.

Each test names the section of docs/protocol.md it pins: refresh grace ("REST API"), the auth and close rules
("Connection lifecycle", "Close codes"), the text and frame limits, history pages, and what to do on
``unavailable`` and with pushes that arrive out of order ("Sync algorithm", "Cluster").
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from hubbub.client import ApiError, ClosedError, HubbubClient
from hubbub.config import Config
from hubbub.core.convs import private_conv
from hubbub.core.errors import Code, HubbubError
from hubbub.protocol.session import MAX_CONSECUTIVE_ERRORS
from tests.conftest import PASSWORD, base_url, friends

CLOSED = (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)


def ws_url(node: Any) -> str:
    return f"ws://127.0.0.1:{node.port}/ws"


async def authed(http: aiohttp.ClientSession, node: Any, token: str | None, terminal: str = "web") -> Any:
    ws = await http.ws_connect(ws_url(node), max_msg_size=0)
    await ws.send_json({"type": "auth", "token": token, "terminal": terminal})
    reply = await ws.receive_json(timeout=5)
    assert reply["type"] == "auth_ok", reply
    return ws


async def refusal_then_close(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    """Every text frame until the close, and the close code (protocol-level pongs are skipped)."""
    frames = []
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in CLOSED:
            return frames, ws.close_code
        if msg.type is aiohttp.WSMsgType.TEXT:
            frames.append(json.loads(msg.data))


async def post(http: aiohttp.ClientSession, url: str, body: Any, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with http.post(url, json=body, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None)


# -- tokens -------------------------------------------------------------------------------------------
async def test_refresh_grace_returns_the_same_successor_then_a_replay_ends_the_session(make_node):
    """Pins "REST API": a spent token within 10 s, successor unused, gets the same successor (concurrent refreshes
    too); once the successor is used, the spent token revokes the whole session."""
    assert Config().refresh_reuse_grace_s == 10.0  # the documented default
    node = await make_node()
    url = base_url(node)
    client = HubbubClient(url)
    try:
        await client.register("grace", PASSWORD)
        spent = client.refresh_token
        async with aiohttp.ClientSession() as http:
            answers = await asyncio.gather(
                *(post(http, url + "/api/v1/auth/refresh", {"refresh_token": spent}) for _ in range(3))
            )
            assert [status for status, _ in answers] == [200, 200, 200]
            successor = {body["refresh_token"] for _, body in answers}
            assert len(successor) == 1 and spent not in successor  # one successor, whoever asked first
            for _, body in answers:  # every answer's access token works, for the same session
                client.access_token = body["access_token"]
                assert (await client.api("GET", "/api/v1/me"))["username"] == "grace"
            # The successor is used: the spent token is now a replay, and the whole session ends.
            status, used = await post(http, url + "/api/v1/auth/refresh", {"refresh_token": successor.pop()})
            assert status == 200
            client._take_tokens(used)
            await client.connect()
            status, replay = await post(http, url + "/api/v1/auth/refresh", {"refresh_token": spent})
            assert (status, replay["error"]["code"]) == (401, "token_revoked")
            with pytest.raises(ClosedError) as closed:
                await asyncio.wait_for(client._runner, 5)  # type: ignore[arg-type]
            assert closed.value.code == 4403
            status, dead = await post(
                http, url + "/api/v1/auth/refresh", {"refresh_token": used["refresh_token"]}
            )
            assert (status, dead["error"]["code"]) == (401, "token_revoked")
            status, unknown = await post(http, url + "/api/v1/auth/refresh", {"refresh_token": "r1.nope"})
            assert (status, unknown["error"]["code"]) == (401, "unauthorized")
    finally:
        await client.close()


# -- authentication ---------------------------------------------------------------------------------
async def test_auth_refusals_send_an_error_frame_then_close(node, make_client):
    """Pins "Connection lifecycle" step 2: each refusal is an error frame (with the auth's rid), then the close."""
    alice = await make_client("authref", connect=False)
    loggedout = await make_client("authout", connect=False)
    revoked_token = loggedout.access_token
    await loggedout.api("POST", "/api/v1/auth/logout", {"refresh_token": loggedout.refresh_token})
    cases: list[tuple[Any, str, int]] = [
        ({"type": "sync", "rid": 1}, "not_authenticated", 4401),
        ({"type": "auth", "token": alice.access_token, "rid": 2}, "invalid_field", 4401),  # no terminal
        ({"type": "auth", "token": alice.access_token, "terminal": "watch", "rid": 3}, "invalid_field", 4401),
        ({"type": "launch", "rid": 4}, "unknown_type", 4401),
        ({"type": "auth", "token": "garbage", "terminal": "web", "rid": 5}, "unauthorized", 4401),
        ({"type": "auth", "token": revoked_token, "terminal": "web", "rid": 6}, "token_revoked", 4401),
        ("{not json", "bad_request", 4401),
    ]
    async with aiohttp.ClientSession() as http:
        for frame, code, close in cases:
            ws = await http.ws_connect(ws_url(node))
            await (ws.send_str(frame) if isinstance(frame, str) else ws.send_json(frame))
            frames, close_code = await refusal_then_close(ws)
            assert len(frames) == 1 and frames[0]["type"] == "error", (frame, frames)
            assert frames[0]["code"] == code, (frame, frames)
            if isinstance(frame, dict):
                assert frames[0]["rid"] == frame["rid"]
            assert close_code == close, frame
        # A second auth after auth_ok is an error, not a close.
        ws = await authed(http, node, alice.access_token)
        await ws.send_json({"type": "auth", "token": alice.access_token, "terminal": "web", "rid": "again"})
        assert (await ws.receive_json(timeout=5))["code"] == "bad_request"
        await ws.send_json({"type": "ping"})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"


async def test_auth_the_server_cannot_check_closes_1001_and_the_sdk_reconnects(node, make_client):
    """Pins "Connection lifecycle": ``unavailable`` on auth is followed by 1001 (reconnect), not the terminal 4401."""
    alice = await make_client("authdown", connect=False)
    auth = node.services.auth
    real = auth.authenticate
    failures = {"left": 1}

    async def flaky(token: str) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise HubbubError(Code.UNAVAILABLE, "storage is unavailable, nothing was stored")
        return await real(token)

    auth.authenticate = flaky  # type: ignore[method-assign]
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url(node))
            await ws.send_json({"type": "auth", "token": alice.access_token, "terminal": "web", "rid": "a"})
            frames, close = await refusal_then_close(ws)
            assert [(f["code"], f["rid"]) for f in frames] == [("unavailable", "a")]
            assert close == 1001
        await alice.connect()  # the next attempt succeeds
    finally:
        auth.authenticate = real  # type: ignore[method-assign]


async def test_auth_deadline_closes_4401_without_an_error_frame(make_node):
    node = await make_node(auth_timeout_s=1)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(node))
        started = time.monotonic()
        frames, close = await refusal_then_close(ws)
        waited = time.monotonic() - started
    assert (frames, close) == ([], 4401)
    assert 1 <= waited < 3.5, waited  # the deadline, then at most about a second of sweeper delay


# -- heartbeat -------------------------------------------------------------------------------------
async def test_silent_socket_closes_4508_and_protocol_pings_do_not_count(make_node):
    """Pins "Connection lifecycle" step 4: only frames count; 2.5 x heartbeat of silence closes with 4508."""
    node = await make_node(heartbeat_s=1)
    client = HubbubClient(base_url(node))
    try:
        await client.register("silent", PASSWORD)
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(ws_url(node), autoping=False)
            await ws.send_json({"type": "auth", "token": client.access_token, "terminal": "web"})
            ok = await ws.receive_json(timeout=5)
            assert ok["heartbeat"] == 1
            started = time.monotonic()

            async def protocol_pings() -> None:
                while not ws.closed:
                    await ws.ping()
                    await asyncio.sleep(0.3)

            pinger = asyncio.get_running_loop().create_task(protocol_pings())
            try:
                frames, close = await refusal_then_close(ws)
            finally:
                pinger.cancel()
            assert close == 4508
            assert 2.3 <= time.monotonic() - started < 4.5
            # JSON pings every heartbeat keep a socket open well past 2.5 heartbeats.
            alive = await authed(http, node, client.access_token, terminal="desktop")
            for _ in range(5):
                await alive.send_json({"type": "ping"})
                assert (await alive.receive_json(timeout=5))["type"] == "pong"
                await asyncio.sleep(1)
            assert not alive.closed
    finally:
        await client.close()


async def test_default_heartbeat_is_announced(node, make_client):
    alice = await make_client("beat", connect=False)
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(ws_url(node))
        await ws.send_json({"type": "auth", "token": alice.access_token, "terminal": "mobile"})
        ok = await ws.receive_json(timeout=5)
    assert (ok["heartbeat"], ok["terminal"]) == (25, "mobile")
    assert ok["limits"] == {
        "max_text_chars": 4000,
        "max_frame_bytes": 65536,
        "recall_window_s": 120,
        # message actions (docs/protocol.md, "Message actions")
        "edit_window_s": 86400,
        "max_reactions": 20,
        "forward_max_items": 20,
        "forward_max_targets": 10,
    }


# -- limits ----------------------------------------------------------------------------------------
async def test_text_limit_counts_code_points_and_answers_too_large(node, make_client):
    """Pins "Text length": 4,000 code points (an emoji counts 1, a combining accent 1), ``too_large`` beyond."""
    alice = await make_client("textlim")
    bob = await make_client("textlim_b")
    await friends(alice, bob)
    emoji = "\U0001f600" * 4000  # 4,000 code points, 8,000 UTF-16 units: JavaScript's s.length says 8000
    ack = await alice.send_text(emoji, to=bob.user_id)
    combining = "e\u0301" * 2000  # 4,000 code points that display as 2,000 characters
    await alice.send_text(combining, to=bob.user_id)
    for text in (emoji + "\U0001f600", combining + "e", "x" * 4001):
        with pytest.raises(ApiError) as refused:
            await alice.request(
                {
                    "type": "send",
                    "cmid": f"c{len(text)}{text[-1]}",
                    "to": bob.user_id,
                    "msg_type": "text",
                    "body": {"text": text},
                }
            )
        assert refused.value.code == "too_large"
    assert (await alice.request({"type": "ping"}))["type"] == "pong"  # the connection stays
    with pytest.raises(ApiError) as blank:
        await alice.request({"type": "send", "cmid": "blank", "to": bob.user_id, "body": {"text": "  \n "}})
    assert blank.value.code == "invalid_field"
    with pytest.raises(ApiError) as rest:
        await alice.api(
            "POST", "/api/v1/messages", {"cmid": "r1", "to": bob.user_id, "body": {"text": "y" * 4001}}
        )
    assert (rest.value.status, rest.value.code) == (413, "too_large")
    # A lone surrogate is not Unicode: the frame does not decode.
    assert alice._ws is not None
    lone = '{"type":"send","cmid":"s","to":' + str(bob.user_id) + ',"body":{"text":"\\ud83d"},"rid":"lone"}'
    await alice._ws.send_str(lone)
    reply = await alice.next_event("error")
    assert reply["code"] == "bad_request"
    page = await bob.api("GET", f"/api/v1/conversations/{ack['conv']}/messages")
    assert [m["body"]["text"] for m in page["messages"]] == [emoji, combining]  # stored as sent, nothing else


async def test_frame_limit_is_65536_bytes_and_over_closes_1009_without_an_error_frame(node, make_client):
    """Pins "Connection lifecycle" step 5."""
    alice = await make_client("framelim", connect=False)

    def ping_of(size: int) -> str:
        head, tail = '{"type":"ping","rid":"big","pad":"', '"}'
        frame = head + "x" * (size - len(head) - len(tail)) + tail
        assert len(frame.encode()) == size
        return frame

    async with aiohttp.ClientSession() as http:
        ws = await authed(http, node, alice.access_token)
        await ws.send_str(ping_of(65536))  # exactly the limit: read and answered
        assert (await ws.receive_json(timeout=5))["rid"] == "big"
        await ws.send_str(ping_of(65537))
        frames, close = await refusal_then_close(ws)
        assert (frames, close) == ([], 1009)
        # Before auth too.
        ws = await http.ws_connect(ws_url(node))
        await ws.send_str(ping_of(70000))
        frames, close = await refusal_then_close(ws)
        assert (frames, close) == ([], 1009)


async def test_4400_after_twenty_invalid_frames_in_a_row(node, make_client):
    """Pins "Connection lifecycle" step 6: only frames that do not decode count; any decoded frame resets."""
    assert MAX_CONSECUTIVE_ERRORS == 20
    alice = await make_client("garbage", connect=False)
    async with aiohttp.ClientSession() as http:
        ws = await authed(http, node, alice.access_token)

        async def invalid(n: int) -> None:
            for i in range(n):
                await ws.send_str('{"type":"pull","conv":"g:1","after_seq":"x' + str(i) + '"}')
                assert (await ws.receive_json(timeout=5))["code"] == "invalid_field"

        await invalid(19)
        # A well-formed request the server refuses does not count, and resets the count.
        await ws.send_json({"type": "pull", "conv": "g:999999", "after_seq": 0, "rid": "p"})
        refused = await ws.receive_json(timeout=5)
        assert refused["rid"] == "p" and refused["code"] in ("not_found", "forbidden")
        await invalid(19)
        assert not ws.closed
        await ws.send_str("}")  # the 20th in a row: answered, then closed
        frames, close = await refusal_then_close(ws)
        assert [f["code"] for f in frames] == ["bad_request"]
        assert close == 4400


# -- close codes -----------------------------------------------------------------------------------
async def test_sdk_classifies_unseen_close_codes_by_range(node, make_client):
    """Pins "Close codes": 4000-4499 terminal, anything else reconnects; the SDK follows the rule, not a list."""
    alice = await make_client("ranges")
    connects = alice.connects
    node.hub.disconnect(alice.user_id, 4777, "a reconnect code from a newer server", None, None)
    await alice.wait_until(lambda: alice.connects > connects and alice._ws is not None, timeout=10)
    node.hub.disconnect(alice.user_id, 4455, "a terminal code from a newer server", None, None)
    with pytest.raises(ClosedError) as closed:
        await asyncio.wait_for(alice._runner, 5)  # type: ignore[arg-type]
    assert closed.value.code == 4455


# -- history, ordering, unavailable ----------------------------------------------------------------
async def test_history_pages_defaults_and_bounds(node, make_client):
    """Pins "History pages": REST default 50, WS pull 100 / history 50, at most 200, always ascending."""
    alice = await make_client("pages")
    bob = await make_client("pages_b")
    await friends(alice, bob)
    for i in range(120):
        await alice.api(
            "POST", "/api/v1/messages", {"cmid": f"m{i}", "to": bob.user_id, "body": {"text": str(i)}}
        )
    conv = private_conv(alice.user_id, bob.user_id)
    path = f"/api/v1/conversations/{conv}/messages"

    async def seqs(**query: Any) -> tuple[list[int], bool]:
        page = await bob.api("GET", path, **query)
        return [m["seq"] for m in page["messages"]], page["has_more"]

    assert await seqs() == (list(range(71, 121)), True)  # the newest 50, ascending
    assert await seqs(before_seq=0) == (list(range(71, 121)), True)
    assert await seqs(after_seq=0) == (list(range(1, 51)), True)
    assert await seqs(after_seq=100) == (list(range(101, 121)), False)
    assert await seqs(before_seq=11) == (list(range(1, 11)), False)
    assert await seqs(after_seq=0, limit=200) == (list(range(1, 121)), False)
    for bad in ({"limit": 201}, {"limit": 0}, {"after_seq": 1, "before_seq": 5}):
        with pytest.raises(ApiError) as refused:
            await bob.api("GET", path, **bad)
        assert (refused.value.status, refused.value.code) == (422, "invalid_field")
    pulled = await bob.request({"type": "pull", "conv": conv, "after_seq": 0})
    assert [m["seq"] for m in pulled["messages"]] == list(range(1, 101)) and pulled["has_more"]
    newest = await bob.request({"type": "history", "conv": conv})
    assert [m["seq"] for m in newest["messages"]] == list(range(71, 121)) and newest["has_more"]
    with pytest.raises(ApiError) as refused_ws:
        await bob.request({"type": "pull", "conv": conv, "after_seq": 0, "limit": 201})
    assert refused_ws.value.code == "invalid_field"


async def test_pushes_in_any_order_become_the_conversation_by_seq_and_pulls(node, make_client):
    """Pins "Sync algorithm" step 3: whatever order pushes arrive in, ordering by seq, dropping seq <= have and
    pulling gaps from ``have`` gives exactly the stored conversation."""
    alice = await make_client("order")
    bob = await make_client("order_b")
    await friends(alice, bob)
    conv = private_conv(alice.user_id, bob.user_id)
    for i in range(8):
        await alice.send_text(f"n{i}", to=bob.user_id)
    pushes = []
    while len(pushes) < 8:
        frame = await bob.next_event("msg")
        if frame["msg"]["conv"] == conv:
            pushes.append(frame["msg"])
    arrival = [pushes[i] for i in (5, 1, 7, 0, 2, 2, 6, 3, 4)]  # out of order, one duplicate
    have, held, log = 0, {}, []
    for msg in arrival:
        if msg["seq"] <= have:
            continue  # a duplicate or a late push
        held[msg["seq"]] = msg
        if msg["seq"] > have + 1:
            page = await bob.request({"type": "pull", "conv": conv, "after_seq": have})
            for pulled in page["messages"]:
                held.setdefault(pulled["seq"], pulled)
        while have + 1 in held:
            have += 1
            log.append(held.pop(have))
    stored = await bob.api("GET", f"/api/v1/conversations/{conv}/messages")
    assert [m["seq"] for m in log] == list(range(1, 9))
    assert log == stored["messages"]


async def test_unavailable_is_retried_on_the_same_socket(node, make_client):
    """Pins "Cluster: other nodes, unavailable": 503 / an error frame, the socket stays, a retry succeeds."""
    alice = await make_client("unavail")
    messages = node.services.messages
    real = messages.conversations
    failures = {"left": 2}

    async def flaky(user_id: int) -> Any:
        if failures["left"]:
            failures["left"] -= 1
            raise HubbubError(Code.UNAVAILABLE, "storage is unavailable, nothing was stored")
        return await real(user_id)

    messages.conversations = flaky  # type: ignore[method-assign]
    try:
        with pytest.raises(ApiError) as rest:
            await alice.api("GET", "/api/v1/conversations")
        assert (rest.value.status, rest.value.code) == (503, "unavailable")
        with pytest.raises(ApiError) as ws:
            await alice.request({"type": "sync"})
        assert ws.value.code == "unavailable"
        assert (await alice.request({"type": "sync"}))["type"] == "sync_result"  # same socket, retried
    finally:
        messages.conversations = real  # type: ignore[method-assign]


async def test_node_list_is_for_administrators_and_names_no_addresses(node, make_client):
    admin = await make_client("nodeadmin", connect=False)  # the first account administers the server
    user = await make_client("nodeuser", connect=False)
    with pytest.raises(ApiError) as refused:
        await user.api("GET", "/api/v1/admin/nodes")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    listed = await admin.api("GET", "/api/v1/admin/nodes")
    assert set(listed["nodes"][0]) == {
        "node",
        "connections",
        "users",
        "started_at",
        "reported_at",
        "draining",
        "alive",
    }
