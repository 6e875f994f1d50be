"""Private chat end to end: acks, pushes, idempotency, sync, history, read state, recall, multi-device."""

import asyncio

import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.core.convs import private_conv
from tests.conftest import PASSWORD, base_url, friends


async def test_send_ack_push_both_directions(make_client):
    alice = await make_client("pa_u")
    bob = await make_client("pb_u")
    await friends(alice, bob)
    conv = private_conv(alice.user_id, bob.user_id)
    ack = await alice.send_text("hello bob", to=bob.user_id)
    assert (ack["conv"], ack["seq"]) == (conv, 1) and ack["id"] and ack["ts"] > 0
    msg = (await bob.next_event("msg"))["msg"]
    assert (msg["sender"], msg["seq"], msg["body"], msg["id"]) == (
        alice.user_id,
        1,
        {"text": "hello bob"},
        ack["id"],
    )
    reply = await bob.send_text("hi alice", conv=conv)
    assert reply["seq"] == 2
    assert (await alice.next_event("msg"))["msg"]["body"]["text"] == "hi alice"


async def test_retried_send_returns_the_same_ack(make_client):
    alice = await make_client("ia_u")
    bob = await make_client("ib_u")
    await friends(alice, bob)
    first = await alice.send_text("once", to=bob.user_id, cmid="fixed-cmid-1")
    again = await alice.send_text("once", to=bob.user_id, cmid="fixed-cmid-1")
    assert first == again
    over_http = await alice.api(
        "POST", "/api/v1/messages", {"cmid": "fixed-cmid-1", "to": bob.user_id, "body": {"text": "once"}}
    )
    assert over_http["seq"] == first["seq"] and over_http["id"] == first["id"]
    page = await bob.api("GET", f"/api/v1/conversations/{first['conv']}/messages", after_seq=0)
    assert [m["body"]["text"] for m in page["messages"]] == ["once"]


async def test_concurrent_burst_is_ordered_and_gap_free(make_client):
    alice = await make_client("ca_u")
    bob = await make_client("cb_u")
    await friends(alice, bob)
    acks = await asyncio.gather(*(alice.send_text(f"m{i}", to=bob.user_id) for i in range(200)))
    acks += await asyncio.gather(*(bob.send_text(f"r{i}", to=alice.user_id) for i in range(100)))
    assert sorted(a["seq"] for a in acks) == list(range(1, 301))
    conv = acks[0]["conv"]
    await bob.wait_until(lambda: bob.convs[conv].have == 300)
    await alice.wait_until(lambda: alice.convs[conv].have == 300)
    assert [m["seq"] for m in bob.history(conv)] == list(range(1, 301))
    assert [m["id"] for m in bob.history(conv)] == [m["id"] for m in alice.history(conv)]


async def test_offline_messages_arrive_on_return_in_order_once(make_client, node):
    alice = await make_client("oa_u")
    bob = await make_client("ob_u")
    await friends(alice, bob)
    await alice.send_text("before", to=bob.user_id)
    await bob.wait_until(lambda: len(bob.history(private_conv(alice.user_id, bob.user_id))) == 1)
    await bob.disconnect()
    for i in range(250):  # more than one pull page
        await alice.send_text(f"while away {i}", to=bob.user_id)
    await bob.connect()  # reconnect runs the sync algorithm
    conv = private_conv(alice.user_id, bob.user_id)
    history = bob.history(conv)
    assert [m["seq"] for m in history] == list(range(1, 252))
    assert history[-1]["body"]["text"] == "while away 249"

    # A new device with nothing local gets the conversation list, unread count and every message.
    fresh = HubbubClient(base_url(node), terminal="desktop")
    try:
        await fresh.login("ob_u", PASSWORD)
        await fresh.connect()
        assert fresh.conversations[conv]["unread"] == 251
        assert fresh.conversations[conv]["last"]["body"]["text"] == "while away 249"
        assert [m["seq"] for m in fresh.history(conv)] == list(range(1, 252))
    finally:
        await fresh.close()


async def test_reconnect_after_dropped_socket_fills_the_gap(make_client):
    alice = await make_client("ra_u")
    bob = await make_client("rb_u")
    await friends(alice, bob)
    conv = private_conv(alice.user_id, bob.user_id)
    bob.auto_reconnect = True
    await bob.drop_connection()
    sends = [asyncio.create_task(alice.send_text(f"x{i}", to=bob.user_id)) for i in range(30)]
    await asyncio.gather(*sends)
    await bob.wait_until(
        lambda: bob.connects >= 2 and bob.convs.get(conv) is not None and bob.convs[conv].have == 30
    )
    assert [m["body"]["text"] for m in bob.history(conv)] == [f"x{i}" for i in range(30)]


async def test_history_pages_backwards(make_client):
    alice = await make_client("ha_u")
    bob = await make_client("hb_u")
    await friends(alice, bob)
    for i in range(12):
        await alice.send_text(f"h{i}", to=bob.user_id)
    conv = private_conv(alice.user_id, bob.user_id)
    page = await bob.request({"type": "history", "conv": conv, "limit": 5})
    assert [m["seq"] for m in page["messages"]] == [8, 9, 10, 11, 12] and page["has_more"]
    page = await bob.request({"type": "history", "conv": conv, "before_seq": 8, "limit": 5})
    assert [m["seq"] for m in page["messages"]] == [3, 4, 5, 6, 7] and page["has_more"]
    page = await bob.request({"type": "history", "conv": conv, "before_seq": 3, "limit": 5})
    assert [m["seq"] for m in page["messages"]] == [1, 2] and not page["has_more"]
    http_page = await bob.api("GET", f"/api/v1/conversations/{conv}/messages", before_seq=3)
    assert [m["seq"] for m in http_page["messages"]] == [1, 2]


async def test_read_receipts_and_unread_counts_reach_every_terminal(make_client, node):
    alice = await make_client("rda")
    bob_web = await make_client("rdb")
    await friends(alice, bob_web)
    bob_phone = HubbubClient(base_url(node), terminal="mobile")
    try:
        await bob_phone.login("rdb", PASSWORD)
        await bob_phone.connect()
        for i in range(3):
            await alice.send_text(f"u{i}", to=bob_web.user_id)
        conv = private_conv(alice.user_id, bob_web.user_id)
        # Both of Bob's terminals get every message.
        await bob_phone.wait_until(
            lambda: bob_phone.convs.get(conv) is not None and bob_phone.convs[conv].have == 3
        )
        await bob_web.wait_until(
            lambda: bob_web.convs.get(conv) is not None and bob_web.convs[conv].have == 3
        )
        listing = {c["conv"]: c for c in (await bob_web.sync())}
        assert listing[conv]["unread"] == 3 and listing[conv]["read_seq"] == 0

        await bob_web.request({"type": "read", "conv": conv, "seq": 2})
        receipt = await alice.next_event("read")
        assert receipt == {"type": "read", "conv": conv, "user": bob_web.user_id, "seq": 2}
        other_terminal = await bob_phone.next_event("read")
        assert other_terminal["seq"] == 2
        listing = {c["conv"]: c for c in (await bob_phone.sync())}
        assert listing[conv]["unread"] == 1 and listing[conv]["read_seq"] == 2
        assert {c["conv"]: c for c in (await alice.sync())}[conv]["peer_read_seq"] == 2

        # Read state never goes backwards, and is capped at the newest message.
        await bob_web.request({"type": "read", "conv": conv, "seq": 1})
        await bob_web.request({"type": "read", "conv": conv, "seq": 99})
        listing = {c["conv"]: c for c in (await bob_web.sync())}
        assert listing[conv]["read_seq"] == 3 and listing[conv]["unread"] == 0
        # Alice's own messages never count as unread for her.
        assert {c["conv"]: c for c in (await alice.sync())}[conv]["unread"] == 0
    finally:
        await bob_phone.close()


async def test_sender_other_terminal_gets_own_messages(make_client, node):
    alice_web = await make_client("sta")
    bob = await make_client("stb")
    await friends(alice_web, bob)
    alice_phone = HubbubClient(base_url(node), terminal="mobile")
    try:
        await alice_phone.login("sta", PASSWORD)
        await alice_phone.connect()
        await alice_web.send_text("from web", to=bob.user_id)
        echo = await alice_phone.next_event("msg")
        assert echo["msg"]["body"]["text"] == "from web"
        await asyncio.sleep(0.1)
        assert all(
            e["type"] != "msg" for e in list(alice_web.events._queue)
        )  # not echoed to the sender socket
    finally:
        await alice_phone.close()


async def test_recall_within_window(make_client):
    alice = await make_client("rca")
    bob = await make_client("rcb")
    await friends(alice, bob)
    ack = await alice.send_text("oops", to=bob.user_id)
    await bob.next_event("msg")
    with pytest.raises(ApiError) as not_sender:
        await bob.request({"type": "recall", "conv": ack["conv"], "seq": ack["seq"]})
    assert not_sender.value.code == "forbidden"
    await alice.request({"type": "recall", "conv": ack["conv"], "seq": ack["seq"]})
    notice = (await bob.next_event("msg"))["msg"]
    assert notice["type"] == "recall" and notice["body"] == {"seq": ack["seq"]} and notice["seq"] == 2
    await bob.wait_until(lambda: bob.history(ack["conv"])[0]["recalled"])
    page = await bob.api("GET", f"/api/v1/conversations/{ack['conv']}/messages", after_seq=0)
    assert page["messages"][0]["recalled"] is True and page["messages"][0]["body"] == {}
    # Recalling twice is harmless and yields the same notice.
    again = await alice.api("POST", f"/api/v1/conversations/{ack['conv']}/messages/{ack['seq']}/recall")
    assert again["seq"] == 2
    with pytest.raises(ApiError) as missing:
        await alice.request({"type": "recall", "conv": ack["conv"], "seq": 77})
    assert missing.value.code == "not_found"


async def test_recall_window_expires(make_node):
    node = await make_node(recall_window_s=1)
    a, b = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await a.register("rwa", PASSWORD)
        await b.register("rwb", PASSWORD)
        await a.befriend(b)
        ack = await a.api(
            "POST", "/api/v1/messages", {"cmid": "c1", "to": b.user_id, "body": {"text": "late"}}
        )
        await asyncio.sleep(1.2)
        with pytest.raises(ApiError) as late:
            await a.api("POST", f"/api/v1/conversations/{ack['conv']}/messages/{ack['seq']}/recall")
        assert (late.value.status, late.value.code) == (409, "recall_expired")
    finally:
        await a.close()
        await b.close()


async def test_typing_reaches_the_peer(make_client):
    alice = await make_client("ta_u")
    bob = await make_client("tb_u")
    await friends(alice, bob)
    conv = private_conv(alice.user_id, bob.user_id)
    await alice._ws.send_json({"type": "typing", "conv": conv})
    assert await bob.next_event("typing") == {"type": "typing", "conv": conv, "user": alice.user_id}


async def test_typing_is_admitted_like_a_send(make_client):
    """Issue 12 item 11: a typing frame reaches only a peer who would accept a message from the typist; a
    refused one gets the send's error code in an error frame (no rid: typing has no reply)."""
    alice = await make_client("tya")
    stranger = await make_client("tys")
    bob = await make_client("tyb")
    await friends(alice, bob)
    # A stranger can name the private conversation they would have with Alice, but may not message her.
    await stranger._ws.send_json({"type": "typing", "conv": private_conv(stranger.user_id, alice.user_id)})
    refused = await stranger.next_event("error")
    assert refused["code"] == "not_friends" and "rid" not in refused
    # Nor a conversation that is not theirs, nor a group.
    await stranger._ws.send_json({"type": "typing", "conv": private_conv(alice.user_id, bob.user_id)})
    assert (await stranger.next_event("error"))["code"] == "forbidden"
    # A push-pull group has none (small groups do since issue 14: tests/e2e/test_message_actions.py).
    group = await alice.api("POST", "/api/v1/groups", {"name": "t", "members": [bob.user_id]})
    await alice.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    await alice._ws.send_json({"type": "typing", "conv": group["conv"]})
    assert (await alice.next_event("error"))["code"] == "forbidden"

    # Friends: delivered. After unfriending: refused like a send, and the former friend hears nothing.
    conv = private_conv(alice.user_id, bob.user_id)
    await bob._ws.send_json({"type": "typing", "conv": conv})
    assert (await alice.next_event("typing"))["user"] == bob.user_id
    await alice.api("DELETE", f"/api/v1/friends/{bob.user_id}")
    await bob._ws.send_json({"type": "typing", "conv": conv})
    assert (await bob.next_event("error"))["code"] == "not_friends"
    with pytest.raises(asyncio.TimeoutError):
        await alice.next_event("typing", timeout=0.5)


async def test_after_unfriending_history_stays_and_sending_stops(make_client):
    """What remains of a private conversation after unfriending (docs/protocol.md): both sides keep reading
    its history, marking it read and recalling their own messages within the window; new messages (and
    typing) are refused with not_friends."""
    alice = await make_client("ufa")
    bob = await make_client("ufb")
    await friends(alice, bob)
    first = await alice.send_text("before", to=bob.user_id)
    await bob.send_text("reply", to=alice.user_id)
    conv = first["conv"]
    await bob.api("DELETE", f"/api/v1/friends/{alice.user_id}")
    for who in (alice, bob):
        page = await who.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0)
        assert [m["body"]["text"] for m in page["messages"]] == ["before", "reply"]
        assert (await who.request({"type": "history", "conv": conv}))["messages"][-1]["seq"] == 2
        await who.request({"type": "read", "conv": conv, "seq": 2})
        assert {c["conv"]: c for c in await who.sync()}[conv]["unread"] == 0
    for who, to in ((alice, bob), (bob, alice)):
        with pytest.raises(ApiError) as refused:
            await who.send_text("still there?", to=to.user_id)
        assert refused.value.code == "not_friends"
    await alice.request({"type": "recall", "conv": conv, "seq": first["seq"]})
    page = await bob.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0)
    assert page["messages"][0]["recalled"] is True and page["messages"][-1]["type"] == "recall"


async def test_recalled_message_is_not_unread(make_client):
    """Issue 12 item 12: unread counts skip recalled messages and recall notices."""
    alice = await make_client("ura")
    bob = await make_client("urb")
    await friends(alice, bob)
    kept = await alice.send_text("kept", to=bob.user_id)
    gone = await alice.send_text("oops", to=bob.user_id)
    conv = kept["conv"]
    assert {c["conv"]: c for c in await bob.sync()}[conv]["unread"] == 2
    await alice.request({"type": "recall", "conv": conv, "seq": gone["seq"]})
    listing = {c["conv"]: c for c in await bob.sync()}[conv]
    assert (listing["unread"], listing["max_seq"]) == (1, 3)


async def test_strangers_and_outsiders_are_refused(make_client):
    alice = await make_client("sa_u")
    stranger = await make_client("sb_u")
    carol = await make_client("sc_u")
    await friends(alice, carol)
    with pytest.raises(ApiError) as not_friends:
        await alice.send_text("hi", to=stranger.user_id)
    assert not_friends.value.code == "not_friends"
    with pytest.raises(ApiError) as nobody:
        await alice.send_text("hi", to=999999)
    assert nobody.value.code == "not_found"
    with pytest.raises(ApiError) as myself:
        await alice.send_text("hi", to=alice.user_id)
    assert myself.value.code == "invalid_field"

    ack = await alice.send_text("secret", to=carol.user_id)
    for frame in (
        {"type": "pull", "conv": ack["conv"], "after_seq": 0},
        {"type": "history", "conv": ack["conv"]},
        {"type": "read", "conv": ack["conv"], "seq": 1},
        {"type": "recall", "conv": ack["conv"], "seq": 1},
    ):
        with pytest.raises(ApiError) as outsider:
            await stranger.request(frame)
        assert outsider.value.code == "forbidden", frame
    with pytest.raises(ApiError) as post_into:
        await stranger.send_text("let me in", conv=ack["conv"])
    assert post_into.value.code == "forbidden"
    with pytest.raises(ApiError) as over_http:
        await stranger.api("GET", f"/api/v1/conversations/{ack['conv']}/messages")
    assert (over_http.value.status, over_http.value.code) == (403, "forbidden")
    assert await stranger.sync() == []


async def test_message_content_limits(make_client):
    alice = await make_client("la_u")
    bob = await make_client("lb_u")
    await friends(alice, bob)
    cases = [
        ({"msg_type": "text", "body": {"text": "x" * 4001}}, "too_large"),
        ({"msg_type": "text", "body": {"text": "   "}}, "invalid_field"),
        ({"msg_type": "text", "body": {"text": 5}}, "invalid_field"),
        ({"msg_type": "text", "body": {}}, "invalid_field"),
        ({"msg_type": "image", "body": {"text": "x"}}, "invalid_field"),
        ({"msg_type": "text", "body": {"text": "ok", "extra": 1}}, "invalid_field"),
    ]
    for content, code in cases:
        with pytest.raises(ApiError) as err:
            await alice.send(content, to=bob.user_id, timeout=5)
        assert err.value.code == code, content
    with pytest.raises(ApiError) as reserved:
        await alice.send_text("x", to=bob.user_id, cmid="~recall:p:1:2:1")
    assert reserved.value.code == "invalid_field"
    assert (await alice.send_text("x" * 4000, to=bob.user_id))["seq"] == 1


async def test_send_rate_limit(make_node):
    node = await make_node(send_rate=1.0, send_burst=5)
    a, b = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await a.register("rla", PASSWORD)
        await b.register("rlb", PASSWORD)
        await a.befriend(b)
        for i in range(5):
            await a.api("POST", "/api/v1/messages", {"cmid": f"c{i}", "to": b.user_id, "body": {"text": "x"}})
        with pytest.raises(ApiError) as limited:
            await a.api("POST", "/api/v1/messages", {"cmid": "c9", "to": b.user_id, "body": {"text": "x"}})
        assert (limited.value.status, limited.value.code) == (429, "rate_limited")
        assert limited.value.retry_after > 0
    finally:
        await a.close()
        await b.close()


async def test_client_moves_to_another_node_when_its_node_is_gone(make_node):
    """Two nodes sharing one SQLite file stand in for a cluster here (tests/cluster has the real one)."""
    first = await make_node(node_id="a")
    second = await make_node(node_id="b", data_dir=first.config.data_dir)
    urls = [base_url(first), base_url(second)]
    a, b = HubbubClient(urls), HubbubClient(list(reversed(urls)))
    try:
        await a.register("mv_a", PASSWORD)
        await b.register("mv_b", PASSWORD)
        await a.befriend(b)
        await a.connect()
        await first.stop()  # a's node goes away; a reconnects to the other one and syncs
        ack = await b.api(
            "POST", "/api/v1/messages", {"cmid": "mv1", "to": a.user_id, "body": {"text": "there?"}}
        )
        conv = ack["conv"]
        await a.wait_until(
            lambda: a.base_url == urls[1] and a.convs.get(conv) is not None and a.convs[conv].have == 1
        )
    finally:
        await a.close()
        await b.close()
