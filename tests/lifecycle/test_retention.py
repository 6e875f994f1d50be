"""Retention end to end on SQLite and PostgreSQL: policies, the purge job, the purged floor as sync, pull and
history show it, media removed once no message names it, and a hot group's recent-message cache."""

from __future__ import annotations

import asyncio

from hubbub.core.clock import now_ms
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.hotgroups.redis import RedisHotState
from hubbub.services.retention import DAY_MS
from tests.lifecycle.helpers import raw, upload, user

LIFE = {"retention_interval_s": 0, "blob_gc_grace_s": 0}


async def test_purge_moves_the_floor_and_readers_start_above_it(make_node, engine):
    node = await make_node(**engine, **LIFE)
    a = await user(node, "ann")  # the first account: a server admin
    b = await user(node, "bob")
    await a.befriend(b)
    up = await upload(a, b"old secret file\n")
    media = await a.send({"msg_type": "file", "body": {"upload": up["upload"]}}, to=b.user_id)
    acks = [media] + [await a.send_text(f"m{i}", to=b.user_id) for i in range(4)]
    await asyncio.sleep(0.01)  # the next messages are younger by at least a millisecond
    acks += [await a.send_text(f"m{i}", to=b.user_id) for i in range(4, 9)]
    conv = acks[0]["conv"]

    # Bad input first: a negative policy is refused and nothing changes.
    status, body = await raw(
        a, node, "PUT", f"/api/v1/admin/conversations/{conv}/retention", json={"days": -1}
    )
    assert (status, body["error"]["code"]) == (422, "invalid_field")
    assert (await a.api("GET", f"/api/v1/conversations/{conv}/retention"))["own"] is None
    # A private chat's policy is an admin's to set, not a member's.
    status, body = await raw(b, node, "PUT", f"/api/v1/conversations/{conv}/retention", json={"days": 1})
    assert (status, body["error"]["code"]) == (403, "forbidden")

    view = await a.api("PUT", f"/api/v1/admin/conversations/{conv}/retention", {"days": 1})
    assert (view["days"], view["own"], view["floor"]) == (1, 1, 0)
    # "Now" is a day after the fifth message: the first five are expired, the rest are not.
    report = await node.services.retention.purge_once(now=acks[4]["ts"] + DAY_MS + 1)
    assert report.messages == 5 and report.conversations == 1
    assert report.uploads == 1 and report.blobs == 1  # the file went with the only message naming it

    # sync: the floor; pull from below it: no error, the first message above it; history: stops at it.
    for client in (a, b):
        convs = {c["conv"]: c for c in await client.sync()}
        assert convs[conv]["floor"] == 5 and convs[conv]["max_seq"] == 10
        page = await client.request({"type": "pull", "conv": conv, "after_seq": 0, "limit": 50})
        assert [m["seq"] for m in page["messages"]] == list(range(6, 11)) and not page["has_more"]
        page = await client.request({"type": "pull", "conv": conv, "after_seq": 3, "limit": 2})
        assert [m["seq"] for m in page["messages"]] == [6, 7] and page["has_more"]
        hist = await client.request({"type": "history", "conv": conv, "limit": 50})
        assert [m["seq"] for m in hist["messages"]] == list(range(6, 11)) and not hist["has_more"]
        assert [m["seq"] for m in client.history(conv)] == list(range(6, 11))  # the SDK dropped the rest
    rest = await a.api("GET", f"/api/v1/conversations/{conv}/messages")
    assert [m["seq"] for m in rest["messages"]] == list(range(6, 11))
    status, _ = await raw(b, node, "GET", f"/api/v1/uploads/{up['upload']}")
    assert status == 404

    # New messages carry on above the floor, gap-free; a second pass purges nothing more.
    after = await a.send_text("new", to=b.user_id)
    assert after["seq"] == 11
    again = await node.services.retention.purge_once(now=acks[4]["ts"] + DAY_MS + 1)
    assert again.messages == 0
    assert (await a.api("GET", f"/api/v1/conversations/{conv}/retention"))["floor"] == 5
    for c in (a, b):
        await c.close()


async def test_server_default_and_keep_for_ever(make_node, engine):
    node = await make_node(**engine, **LIFE, retention_days=2)
    a = await user(node)
    b = await user(node)
    await a.befriend(b)
    first = await a.send_text("one", to=b.user_id)
    group = await a.api("POST", "/api/v1/groups", {"name": "keep", "members": [b.user_id]})
    await a.send_text("in the group", conv=group["conv"])
    # The group's owner keeps it for ever; the private chat follows the server default (2 days).
    view = await a.api("PUT", f"/api/v1/conversations/{group['conv']}/retention", {"days": 0})
    assert (view["days"], view["own"], view["server_default"], view["can_edit"]) == (0, 0, 2, True)
    member_view = await b.api("GET", f"/api/v1/conversations/{group['conv']}/retention")
    assert member_view["can_edit"] is False
    status, body = await raw(
        b, node, "PUT", f"/api/v1/conversations/{group['conv']}/retention", json={"days": 3}
    )
    assert (status, body["error"]["code"]) == (403, "forbidden")
    report = await node.services.retention.purge_once(now=now_ms() + 3 * DAY_MS)
    assert report.conversations == 1 and report.messages == 1
    convs = {c["conv"]: c for c in await a.sync()}
    assert convs[first["conv"]]["floor"] == 1 and convs[first["conv"]]["last"] is None
    assert convs[group["conv"]]["floor"] == 0
    for c in (a, b):
        await c.close()


async def test_hot_group_cache_drops_purged_messages(make_node, engine):
    node = await make_node(**engine, **LIFE, hot_group_threshold=2, hot_signal_window_ms=20)
    owner = await user(node)
    m1 = await user(node)
    m2 = await user(node)
    await owner.befriend(m1)
    await owner.befriend(m2)
    group = await owner.api("POST", "/api/v1/groups", {"name": "hot", "members": [m1.user_id, m2.user_id]})
    conv = group["conv"]
    acks = [await owner.send_text(f"hot {i}", conv=conv) for i in range(4)]
    await asyncio.sleep(0.01)
    acks += [await owner.send_text(f"hot {i}", conv=conv) for i in range(4, 8)]
    page = await m1.request({"type": "pull", "conv": conv, "after_seq": 0, "limit": 50})
    assert len(page["messages"]) == 9  # the creation notice and eight messages, now cached
    assert await node.hot_state.recent(conv, 0, 50) is not None

    await owner.api("PUT", f"/api/v1/conversations/{conv}/retention", {"days": 1})
    await node.services.retention.purge_once(now=acks[3]["ts"] + DAY_MS + 1)  # seqs 1..5
    assert await node.hot_state.recent(conv, 0, 50) is None
    assert await node.hot_state.recent(conv, 4, 50) is None
    cached = await node.hot_state.recent(conv, 5, 50)
    assert cached is not None and len(cached) == 4
    # A pull that read the purged rows just before the purge cannot put them back into the cache.
    await node.hot_state.append(conv, [(2, b'{"seq":2}')])
    assert await node.hot_state.recent(conv, 1, 50) is None
    for client in (m1, m2):
        page = await client.request({"type": "pull", "conv": conv, "after_seq": 0, "limit": 50})
        assert [m["seq"] for m in page["messages"]] == [6, 7, 8, 9]
    for c in (owner, m1, m2):
        await c.close()


async def test_hot_state_floor_contract(redis_server):
    import redis.asyncio as aioredis

    for state in (
        MemoryHotState(10),
        RedisHotState(aioredis.Redis.from_url(redis_server.url), prefix="life"),
    ):
        conv = "g:4242"
        await state.append(conv, [(s, f"m{s}".encode()) for s in range(1, 8)])
        await state.drop_through(conv, 4)
        assert await state.recent(conv, 0, 10) is None
        assert await state.recent(conv, 4, 10) == [b"m5", b"m6", b"m7"]
        await state.append(conv, [(3, b"old"), (8, b"m8")])
        await state.replace(conv, 2, b"blank")
        assert await state.recent(conv, 1, 10) is None
        assert await state.recent(conv, 4, 10) == [b"m5", b"m6", b"m7", b"m8"]
        await state.drop_through(conv, 2)  # a lower floor changes nothing
        assert await state.recent(conv, 4, 10) == [b"m5", b"m6", b"m7", b"m8"]
        await state.close()


async def test_the_purge_job_cleans_up_the_canarys_messages(make_node, engine):
    """The delivery canary's messages go after ``canary_retention_hours``, whatever the conversation's policy;
    people's messages in the same purge stay."""
    node = await make_node(**engine, **LIFE, canary_retention_hours=1)
    admin = await user(node)  # the first account: a server admin
    canary = await user(node)
    await canary.befriend(admin)
    await admin.api("PUT", f"/api/v1/admin/users/{canary.user_id}/canary")
    synthetic = await canary.send_text("canary 1", to=admin.user_id)
    await admin.send_text("a person's reply", to=canary.user_id)

    assert (await node.services.retention.purge_once()).canary == 0  # younger than an hour
    report = await node.services.retention.purge_once(now=now_ms() + 2 * 3_600_000)
    assert (report.canary, report.messages) == (1, 0)
    history = await admin.api("GET", f"/api/v1/conversations/{synthetic['conv']}/messages")
    assert [m["body"]["text"] for m in history["messages"]] == ["a person's reply"]
    for c in (admin, canary):
        await c.close()
