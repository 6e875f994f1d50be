"""Hot groups end to end: signals instead of pushes, coalesced; pulls from the cache; pulls never block."""

import asyncio
import time

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.core.convs import private_conv
from tests.conftest import PASSWORD, base_url, friends


async def people(node, names):
    clients = []
    for name in names:
        client = HubbubClient(base_url(node))
        await client.register(name, PASSWORD)
        clients.append(client)
    await friends(*clients)
    return clients


def frames_of(client, kind, conv):
    return [
        f
        for f in list(client.events._queue)
        if f["type"] == kind and (f.get("conv") or f.get("msg", {}).get("conv")) == conv
    ]


async def test_hot_group_members_get_signals_and_pull_everything_in_order(make_node):
    node = await make_node(hot_group_threshold=4, hot_signal_window_ms=100)
    owner, a, b, c, away = await people(node, ["hot_own", "hot_a", "hot_b", "hot_c", "hot_away"])
    try:
        for client in (owner, a, b, c):
            await client.connect()
        group = await owner.api(
            "POST",
            "/api/v1/groups",
            {"name": "big", "members": [a.user_id, b.user_id, c.user_id, away.user_id]},
        )
        conv = group["conv"]
        assert group["member_count"] >= 4

        acks = await asyncio.gather(
            *(s.send_text(f"{s.user['username']}-{i}", conv=conv) for s in (a, b) for i in range(100))
        )
        assert sorted(x["seq"] for x in acks) == list(range(2, 202))
        for member in (owner, a, b, c):
            await member.wait_until(
                lambda m=member: m.convs.get(conv) is not None and m.convs[conv].have == 201, timeout=15
            )
        orders = [[m["id"] for m in member.history(conv)] for member in (owner, a, b, c)]
        assert all(order == orders[0] for order in orders)

        # Members got small signals, not the 200 messages pushed one by one, and far fewer of them.
        news = frames_of(c, "news", conv)
        pushed = frames_of(c, "msg", conv)
        assert pushed == [] and 1 <= len(news) <= 40, (len(news), len(pushed))
        assert node.services.hot.cache_hits > 0

        # An offline member does nothing at send time and syncs on return.
        await away.connect()
        assert [m["seq"] for m in away.history(conv)] == list(range(1, 202))
    finally:
        for client in (owner, a, b, c, away):
            await client.close()


async def test_mentions_are_signalled_at_once(make_node):
    node = await make_node(hot_group_threshold=3, hot_signal_window_ms=2000)
    owner, a, b = await people(node, ["hm_own", "hm_a", "hm_b"])
    try:
        for client in (owner, a, b):
            await client.connect()
        group = await owner.api("POST", "/api/v1/groups", {"name": "g", "members": [a.user_id, b.user_id]})
        started = time.monotonic()
        await a.send(
            {"msg_type": "text", "body": {"text": "@b", "mentions": [b.user_id]}}, conv=group["conv"]
        )
        signal = await b.next_event("news", where=lambda f: f.get("mention"), timeout=1.5)
        assert signal["conv"] == group["conv"] and time.monotonic() - started < 1.5  # well inside the window
        assert {x["conv"]: x for x in await b.sync()}[group["conv"]]["mention"] is True
    finally:
        for client in (owner, a, b):
            await client.close()


async def test_small_group_marked_hot_by_an_admin(make_client):
    owner, a = await make_client("mk_own"), await make_client("mk_a")
    await friends(owner, a)
    group = await owner.api("POST", "/api/v1/groups", {"name": "g", "members": [a.user_id]})
    with pytest.raises(ApiError) as refused:
        await a.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    assert refused.value.code == "forbidden"
    marked = await owner.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    assert marked["hot"] is True
    await owner.send_text("signal me", conv=group["conv"])
    await a.next_event("news", where=lambda f: f["conv"] == group["conv"])
    await a.wait_until(lambda: "signal me" in [m["body"].get("text") for m in a.history(group["conv"])])


async def test_a_slow_pull_never_blocks_heartbeats_or_other_frames(make_node):
    node = await make_node(hot_group_threshold=3)
    owner, a, friend = await people(node, ["sp_own", "sp_a", "sp_friend"])
    try:
        await owner.connect()
        group = await owner.api(
            "POST", "/api/v1/groups", {"name": "g", "members": [a.user_id, friend.user_id]}
        )
        await owner.send_text("hello", conv=group["conv"])

        # Make every pull take 2 s.
        real = node.services.messages.pull_for_wire

        async def slow_pull(*args, **kwargs):
            await asyncio.sleep(2.0)
            return await real(*args, **kwargs)

        node.services.messages.pull_for_wire = slow_pull
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(f"ws://127.0.0.1:{node.port}/ws")
            await ws.send_json({"type": "auth", "token": a.access_token, "terminal": "web"})
            assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
            started = time.monotonic()
            await ws.send_json({"type": "pull", "conv": group["conv"], "after_seq": 0, "rid": "slow"})
            await ws.send_json({"type": "ping", "rid": "hb"})
            await friend.api(
                "POST", "/api/v1/messages", {"cmid": "p1", "to": a.user_id, "body": {"text": "psst"}}
            )
            seen = []
            while "slow" not in [f.get("rid") for f in seen]:
                frame = await ws.receive_json(timeout=5)
                seen.append({**frame, "at": time.monotonic() - started})
            by_kind = {f.get("rid") or f["type"]: f for f in seen}
            assert by_kind["hb"]["at"] < 0.5  # the heartbeat was answered at once ...
            assert by_kind["msg"]["msg"]["conv"] == private_conv(a.user_id, friend.user_id)
            assert by_kind["msg"]["at"] < 0.5  # ... and a private message got through meanwhile
            assert by_kind["slow"]["at"] >= 2.0 and len(by_kind["slow"]["messages"]) == 2
            await ws.close()
    finally:
        for client in (owner, a, friend):
            await client.close()


async def test_recalled_message_is_not_served_from_the_cache(make_node):
    node = await make_node(hot_group_threshold=3)
    owner, a, b = await people(node, ["rcc_own", "rcc_a", "rcc_b"])
    try:
        await owner.connect()
        group = await owner.api("POST", "/api/v1/groups", {"name": "g", "members": [a.user_id, b.user_id]})
        ack = await owner.send_text("oops, secret", conv=group["conv"])
        await owner.request({"type": "recall", "conv": group["conv"], "seq": ack["seq"]})
        await b.connect()  # pulls from the hot cache
        recalled = [m for m in b.history(group["conv"]) if m["seq"] == ack["seq"]]
        assert recalled[0]["recalled"] is True and recalled[0]["body"] == {}
        assert "secret" not in str(b.history(group["conv"]))
    finally:
        for client in (owner, a, b):
            await client.close()


async def pull(client: HubbubClient, conv: str) -> list[dict]:
    page = await client.request({"type": "pull", "conv": conv, "after_seq": 0, "limit": 200})
    return page["messages"]


async def test_membership_is_current_after_a_group_stops_being_hot(make_node):
    """Issue 12.1: a roster read while the group was hot must not outlive the switch back to push."""
    node = await make_node(hot_signal_window_ms=100)
    owner, kicked, quitter, late = await people(node, ["unhot_own", "unhot_k", "unhot_q", "unhot_late"])
    try:
        for client in (owner, kicked, quitter):
            await client.connect()
        group = await owner.api(
            "POST", "/api/v1/groups", {"name": "g", "members": [kicked.user_id, quitter.user_id]}
        )
        gid, conv = group["id"], group["conv"]
        marked = await owner.api("PATCH", f"/api/v1/groups/{gid}", {"hot": True})
        assert marked["hot"] is True and marked["push_pull"] is True
        await owner.send_text("while hot", conv=conv)
        await kicked.next_event("news", where=lambda f: f["conv"] == conv)  # this node read the roster
        assert "while hot" in [m["body"].get("text") for m in await pull(kicked, conv)]
        await asyncio.sleep(0.3)  # a news window passes

        unmarked = await owner.api("PATCH", f"/api/v1/groups/{gid}", {"hot": False})
        assert unmarked["hot"] is False and unmarked["push_pull"] is False
        await owner.api("DELETE", f"/api/v1/groups/{gid}/members/{kicked.user_id}")
        await quitter.api("DELETE", f"/api/v1/groups/{gid}/members/{quitter.user_id}")
        await owner.send_text("after the kick", conv=conv)

        # Those who left cannot pull, on their connection or on a fresh one.
        for gone in (kicked, quitter):
            with pytest.raises(ApiError) as refused:
                await pull(gone, conv)
            assert refused.value.code == "forbidden"
            await gone.disconnect()
            await gone.connect()
            with pytest.raises(ApiError) as refused:
                await pull(gone, conv)
            assert refused.value.code == "forbidden"

        # A member invited after the switch can pull what follows their joining.
        await owner.api("POST", f"/api/v1/groups/{gid}/members", {"users": [late.user_id]})
        await owner.send_text("welcome", conv=conv)
        await late.connect()
        assert conv in {c["conv"] for c in await late.sync()}
        texts = [m["body"].get("text") for m in await pull(late, conv)]
        assert "welcome" in texts and "after the kick" not in texts
    finally:
        for client in (owner, kicked, quitter, late):
            await client.close()


async def test_membership_is_current_while_a_group_stays_hot(make_node):
    node = await make_node(hot_group_threshold=3, hot_signal_window_ms=100)
    owner, kicked, stays, late = await people(node, ["kh_own", "kh_k", "kh_s", "kh_late"])
    try:
        for client in (owner, kicked, stays):
            await client.connect()
        group = await owner.api(
            "POST", "/api/v1/groups", {"name": "g", "members": [kicked.user_id, stays.user_id]}
        )
        gid, conv = group["id"], group["conv"]
        assert group["hot"] is False and group["push_pull"] is True  # hot by size, not by the flag
        await owner.send_text("one", conv=conv)
        await kicked.next_event("news", where=lambda f: f["conv"] == conv)
        await owner.api("DELETE", f"/api/v1/groups/{gid}/members/{kicked.user_id}")
        await owner.api("POST", f"/api/v1/groups/{gid}/members", {"users": [late.user_id]})
        await owner.send_text("two", conv=conv)
        with pytest.raises(ApiError) as refused:
            await pull(kicked, conv)
        assert refused.value.code == "forbidden"
        await late.connect()
        assert "two" in [m["body"].get("text") for m in await pull(late, conv)]
        listed = {g["id"]: g for g in (await owner.api("GET", "/api/v1/groups"))["groups"]}
        assert listed[gid]["push_pull"] is True
    finally:
        for client in (owner, kicked, stays, late):
            await client.close()
