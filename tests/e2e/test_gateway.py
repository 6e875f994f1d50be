"""The WebSocket gateway under bad input and misbehaving clients: it answers clearly and keeps serving."""

import asyncio

import aiohttp
import pytest

from hubbub.client import ClosedError, HubbubClient
from hubbub.core.convs import private_conv
from tests.conftest import PASSWORD, base_url, friends


async def raw_ws(node, http):
    return await http.ws_connect(f"ws://127.0.0.1:{node.port}/ws")


async def authed_ws(node, http, client, terminal="web"):
    ws = await raw_ws(node, http)
    await ws.send_json({"type": "auth", "token": client.access_token, "terminal": terminal})
    reply = await ws.receive_json(timeout=5)
    assert reply["type"] == "auth_ok", reply
    return ws


async def test_nothing_before_auth(node):
    async with aiohttp.ClientSession() as http:
        ws = await raw_ws(node, http)
        await ws.send_json({"type": "sync", "rid": 1})
        error = await ws.receive_json(timeout=5)
        assert (error["type"], error["code"], error["rid"]) == ("error", "not_authenticated", 1)
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4401


async def test_bad_token_is_refused(node):
    async with aiohttp.ClientSession() as http:
        ws = await raw_ws(node, http)
        await ws.send_json({"type": "auth", "token": "garbage", "terminal": "web", "rid": "a"})
        error = await ws.receive_json(timeout=5)
        assert (error["code"], error["rid"]) == ("unauthorized", "a")
        await ws.receive(timeout=5)
        assert ws.close_code == 4401


async def test_auth_timeout(make_node):
    node = await make_node(auth_timeout_s=0.5)
    async with aiohttp.ClientSession() as http:
        ws = await raw_ws(node, http)
        msg = await ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert ws.close_code == 4401


async def test_malformed_frames_get_errors_and_the_connection_survives(node, make_client):
    alice = await make_client("gwa", connect=False)
    async with aiohttp.ClientSession() as http:
        ws = await authed_ws(node, http, alice)
        cases = [
            ("{not json", "bad_request"),
            ("[1,2,3]", "bad_request"),
            ('{"no_type": 1}', "unknown_type"),
            ('{"type": "launch_rockets", "rid": 7}', "unknown_type"),
            ('{"type": "pull", "conv": "p:1:2", "after_seq": "zero", "rid": 8}', "invalid_field"),
            ('{"type": "pull", "conv": "p:1:2", "after_seq": -1}', "invalid_field"),
            ('{"type": "pull", "conv": "p:1:2", "limit": 100000}', "invalid_field"),
            ('{"type": "send", "cmid": "", "to": 2, "body": {"text": "x"}}', "invalid_field"),
            ('{"type": "send", "cmid": "c", "to": 2, "body": "text"}', "invalid_field"),
            ('{"type": "pull", "conv": "nonsense", "after_seq": 0}', "invalid_id"),
            ('{"type": "pull", "conv": "g:424242", "after_seq": 0}', "forbidden"),
            ('{"type": "auth", "token": "again", "terminal": "web"}', "bad_request"),
        ]
        for raw, code in cases:
            await ws.send_str(raw)
            reply = await ws.receive_json(timeout=5)
            assert (reply["type"], reply["code"]) == ("error", code), raw
        await ws.send_json({"type": "ping", "rid": "still-alive"})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"
        assert not ws.closed


async def test_persistent_garbage_is_cut_off(node, make_client):
    alice = await make_client("gwg", connect=False)
    async with aiohttp.ClientSession() as http:
        ws = await authed_ws(node, http, alice)
        for _ in range(25):
            await ws.send_str("}")
        while (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert ws.close_code == 4400


async def test_oversize_frame_closes_with_1009_and_server_keeps_serving(node, make_client):
    alice = await make_client("gwo", connect=False)
    async with aiohttp.ClientSession() as http:
        ws = await authed_ws(node, http, alice)
        await ws.send_str('{"type":"ping","pad":"' + "x" * 70_000 + '"}')
        while (await ws.receive(timeout=5)).type == aiohttp.WSMsgType.TEXT:
            pass
        assert ws.close_code == 1009
        again = await authed_ws(node, http, alice)
        await again.send_json({"type": "ping"})
        assert (await again.receive_json(timeout=5))["type"] == "pong"


async def test_second_login_on_same_terminal_replaces_the_first(node, make_client):
    first = await make_client("gwr")
    second = HubbubClient(base_url(node), terminal="web")
    phone = HubbubClient(base_url(node), terminal="mobile")
    try:
        await second.login("gwr", PASSWORD)
        await phone.login("gwr", PASSWORD)
        await phone.connect()
        await second.connect()
        with pytest.raises(ClosedError) as replaced:
            await asyncio.wait_for(first._runner, 5)
        assert replaced.value.code == 4409
        assert second._ws is not None and phone._ws is not None  # other terminals stay
        assert (await second.request({"type": "ping"}))["type"] == "pong"
    finally:
        await second.close()
        await phone.close()


async def test_silent_connection_is_closed(make_node):
    node = await make_node(heartbeat_s=1)
    client = HubbubClient(base_url(node))
    try:
        await client.register("gws", PASSWORD)
        async with aiohttp.ClientSession() as http:
            ws = await authed_ws(node, http, client)
            msg = await ws.receive(timeout=10)  # we never ping
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 4508
            # A client that does ping stays.
            alive = await authed_ws(node, http, client, terminal="desktop")
            for _ in range(4):
                await alive.send_json({"type": "ping"})
                assert (await alive.receive_json(timeout=5))["type"] == "pong"
                await asyncio.sleep(0.8)
            assert not alive.closed
    finally:
        await client.close()


async def test_slow_consumer_is_cut_off_and_others_keep_receiving(make_node):
    node = await make_node(max_send_buffer=64 * 1024, send_rate=1e6, send_burst=10**6)
    url = base_url(node)
    sender, slow, fast = HubbubClient(url), HubbubClient(url), HubbubClient(url)
    try:
        for c, name in ((sender, "slw_s"), (slow, "slw_slow"), (fast, "slw_fast")):
            await c.register(name, PASSWORD)
        await friends(sender, slow, fast)
        await sender.connect()
        await fast.connect()
        # The slow client authenticates and then never reads, with a tiny receive window.
        writer = await _silent_authenticated_socket(node.port, slow.access_token)

        text = "y" * 4000
        conv_fast = private_conv(sender.user_id, fast.user_id)
        sent_to_slow = 0
        for _ in range(60):
            await asyncio.gather(*(sender.send_text(text, to=slow.user_id) for _ in range(50)))
            sent_to_slow += 50
            await sender.send_text(f"f{sent_to_slow}", to=fast.user_id)
            if not any(c.user and c.user.id == slow.user_id for c in node.hub.by_id.values()):
                break
        # The slow socket was dropped by the server (no unbounded buffering) ...
        assert not any(c.user and c.user.id == slow.user_id for c in node.hub.by_id.values())
        # ... while the fast client got everything, in order.
        await fast.wait_until(
            lambda: fast.convs.get(conv_fast) is not None and fast.convs[conv_fast].have == sent_to_slow // 50
        )
        writer.close()
        # Nothing was lost for the slow user: a later sync has all 150.
        await slow.connect()
        assert len(slow.history(private_conv(sender.user_id, slow.user_id))) == sent_to_slow
    finally:
        for c in (sender, slow, fast):
            await c.close()


async def test_presence_goes_to_friends_only(make_client, node):
    alice = await make_client("pra")
    bob = await make_client("prb")
    stranger = await make_client("prc")
    await friends(alice, bob)
    phone = HubbubClient(base_url(node), terminal="mobile")
    try:
        await phone.login("prb", PASSWORD)
        await phone.connect()
        event = await alice.next_event("presence", where=lambda f: f["user"] == bob.user_id)
        assert event["online"] and event["terminals"] == ["mobile", "web"]
        await phone.disconnect()
        event = await alice.next_event("presence", where=lambda f: f["user"] == bob.user_id)
        assert event["online"] and event["terminals"] == ["web"]
        await bob.disconnect()
        event = await alice.next_event("presence", where=lambda f: f["user"] == bob.user_id)
        seen = event.pop("last_seen")  # issue 15: friends see when, by default
        assert event == {"type": "presence", "user": bob.user_id, "online": False, "terminals": []} and seen > 0
        friends_list = (await alice.api("GET", "/api/v1/friends"))["friends"]
        assert friends_list[0]["online"] is False
        await asyncio.sleep(0.1)
        assert all(e["type"] != "presence" for e in list(stranger.events._queue))
    finally:
        await phone.close()


async def _silent_authenticated_socket(port, token):
    """A raw WebSocket client that authenticates, then never reads: the slow consumer."""
    import base64
    import os
    import socket

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    _reader, writer = await asyncio.open_connection(sock=sock, limit=1024)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    auth = b'{"type":"auth","terminal":"web","token":"' + token.encode() + b'"}'
    mask = os.urandom(4)
    payload = bytes(b ^ mask[i % 4] for i, b in enumerate(auth))
    length = (
        bytes([0x80 | 126]) + len(auth).to_bytes(2, "big") if len(auth) >= 126 else bytes([0x80 | len(auth)])
    )
    writer.write(bytes([0x81]) + length + mask + payload)
    await writer.drain()
    await asyncio.sleep(0.3)
    return writer


async def test_refused_typing_gets_an_error_frame_and_reaches_nobody(node, make_client):
    """Issue 12 item 11 at the frame level: a typing frame to a non-friend is answered with an error frame
    (no rid, the send's code), never delivered, and the connection keeps serving."""
    stranger = await make_client("gw_ty_s", connect=False)
    target = await make_client("gw_ty_t")
    async with aiohttp.ClientSession() as http:
        ws = await authed_ws(node, http, stranger)
        await ws.send_json({"type": "typing", "conv": private_conv(stranger.user_id, target.user_id)})
        reply = await ws.receive_json(timeout=5)
        assert (reply["type"], reply["code"]) == ("error", "not_friends") and "rid" not in reply
        await ws.send_json({"type": "ping", "rid": "after"})
        assert (await ws.receive_json(timeout=5))["type"] == "pong"
    with pytest.raises(asyncio.TimeoutError):
        await target.next_event("typing", timeout=0.3)


async def _login_race(http, url_a: str, url_b: str, token: str) -> tuple[list, list]:
    """Two sockets of one user and terminal authenticating at the same moment; what each one saw, up to its
    close or a quiet second."""
    a, b = await http.ws_connect(url_a), await http.ws_connect(url_b)
    auth = {"type": "auth", "token": token, "terminal": "web"}
    await asyncio.gather(a.send_json(auth), b.send_json(auth))

    async def seen(ws) -> list:
        got = []
        while True:
            try:
                msg = await ws.receive(timeout=1)
            except TimeoutError:
                return got
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return [*got, ("close", msg.data)]
            got.append(msg.json()["type"])

    return list(await asyncio.gather(seen(a), seen(b), return_exceptions=False)), [a, b]


async def assert_one_login_survives(http, url_a: str, url_b: str, owner: HubbubClient, friend: HubbubClient):
    outcomes, sockets = await _login_race(http, url_a, url_b, owner.access_token)
    closed = [o for o in outcomes if o and o[-1] == ("close", 4409)]
    alive = [ws for o, ws in zip(outcomes, sockets, strict=True) if not (o and o[-1][0] == "close")]
    assert len(closed) == 1 and len(alive) == 1, outcomes
    # Only the survivor is reachable: a message to the user is pushed to it.
    await friend.send_text("who is there?", to=owner.user_id)
    push = await alive[0].receive_json(timeout=5)
    assert push["type"] == "msg" and push["msg"]["body"] == {"text": "who is there?"}
    for ws in sockets:
        await ws.close()


async def test_two_logins_of_one_terminal_at_once_leave_exactly_one(node, make_client):
    # Issue 12, item 4: both used to get auth_ok and pushes (6 of 8 trials).
    owner, friend = await make_client("racer", connect=False), await make_client("racefriend")
    await friends(owner, friend)
    ws_url = f"ws://127.0.0.1:{node.port}/ws"
    async with aiohttp.ClientSession() as http:
        for _ in range(8):
            await assert_one_login_survives(http, ws_url, ws_url, owner, friend)
