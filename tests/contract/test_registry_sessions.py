"""The sessions cap of the registry contract (issue 15; engines/registry/base.py), against MemoryRegistry and
RedisRegistry alike: device slots coexist, the idlest is evicted past the cap, never the new one; and across
two Redis nodes, an eviction names the other node's connection and its recovery rewrite does not bring it back."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.engines.registry import redis as redis_registry
from hubbub.engines.registry.base import Holder, slot_of, terminals_of
from hubbub.engines.registry.redis import RedisRegistry
from hubbub.protocol.close_codes import Close
from tests.contract.nodes import MakeEngines, make_engines, redis_only

__all__ = ["make_engines"]


def test_slots_and_terminal_classes() -> None:
    assert slot_of("web", None) == "web"
    assert slot_of("web", "t-1") == "web#t-1"
    assert terminals_of(["web#a", "web#b", "mobile", "web"]) == ("mobile", "web")


async def test_devices_of_one_terminal_coexist(make_engines: MakeEngines) -> None:
    registry = (await make_engines()).registry
    a = await registry.register(1, "web#a", "c1", cap=10)
    b = await registry.register(1, "web#b", "c2", cap=10)
    assert a.replaced is None and b.replaced is None and b.evicted == ()
    assert await registry.presence([1]) == {1: ("web#a", "web#b")}
    again = await registry.register(1, "web#a", "c3", cap=10)  # the same tab reconnecting
    assert again.replaced is not None and again.replaced.conn_id == "c1"


async def _sleep_ms() -> None:
    await asyncio.sleep(0.003)  # activity times are in ms: keep them apart


async def test_past_the_cap_the_idlest_is_evicted(make_engines: MakeEngines) -> None:
    node = await make_engines()
    registry = node.registry
    for i in range(3):
        change = await registry.register(2, f"web#d{i}", f"c{i}", cap=3)
        assert change.evicted == ()
        await _sleep_ms()
    registry.touch(2, "web#d0", "c0")  # the oldest login is the most recently active one
    if isinstance(registry, RedisRegistry):
        await registry.refresh()  # Redis hears of activity with a rewrite, or a flush at most once a minute
    await _sleep_ms()
    change = await registry.register(2, "web#d3", "c3", cap=3)
    assert change.evicted == (Holder(node.node_id, "c1"),)
    assert change.after == ("web#d0", "web#d2", "web#d3")
    assert await registry.presence([2]) == {2: ("web#d0", "web#d2", "web#d3")}
    assert await registry.unregister(2, "web#d1", "c1") is None  # its late close frees nothing
    if isinstance(registry, RedisRegistry):
        assert registry._local[2] == {"web#d0": "c0", "web#d2": "c2", "web#d3": "c3"}


async def test_activity_is_a_local_write_that_the_upkeep_flushes(
    make_engines: MakeEngines, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``touch`` does no I/O (the gateway calls it per frame); ``flush_activity`` (the sweep round) sends what
    is due, so a registration anywhere evicts by it."""
    node = await make_engines()
    registry = node.registry
    monkeypatch.setattr(redis_registry, "TOUCH_EVERY_MS", 0)  # due at once (a minute in production)
    for i in range(3):
        await registry.register(6, f"web#d{i}", f"c{i}", cap=3)
        await _sleep_ms()
    registry.touch(6, "web#d0", "c0")
    registry.touch(6, "web#gone", "c9")  # not a connection of this node: ignored
    await registry.flush_activity()
    await registry.flush_activity()  # nothing due: no round trip, no change
    await _sleep_ms()
    change = await registry.register(6, "web#d3", "c3", cap=3)
    assert change.evicted == (Holder(node.node_id, "c1"),)


async def test_a_cap_of_one_keeps_the_newest(make_engines: MakeEngines) -> None:
    node = await make_engines()
    await node.registry.register(3, "web#a", "c1", cap=1)
    change = await node.registry.register(3, "mobile", "c2", cap=1)
    assert change.evicted == (Holder(node.node_id, "c1"),) and change.after == ("mobile",)


async def test_no_cap_evicts_nothing(make_engines: MakeEngines) -> None:
    registry = (await make_engines()).registry
    for i in range(12):
        assert (await registry.register(4, f"web#{i}", f"c{i}")).evicted == ()
    assert len((await registry.presence([4]))[4]) == 12


async def test_eviction_reaches_across_nodes_and_is_not_renewed_back(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "one process holds every registration of the in-process registry")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    n1.hub.attach(5, "n1/5")
    await n1.registry.register(5, "web#old", "n1/5", cap=2)
    await _sleep_ms()
    await n2.registry.register(5, "mobile#p", "n2/5", cap=2)
    await _sleep_ms()
    change = await n2.registry.register(5, "web#new", "n2/6", cap=2)
    assert change.evicted == (Holder("n1", "n1/5"),)
    # The close to n1 is never sent here: n1 still believes it holds the slot. Its rewrite (after Redis lost
    # its state) must not bring the slot back; it closes its own connection as evicted instead.
    assert isinstance(n1.registry, RedisRegistry)
    await n1.registry.refresh()
    assert (5, Close.EVICTED, "n1/5") in n1.hub.closed
    assert 5 not in n1.registry._local
    assert await n2.registry.presence([5]) == {5: ("mobile#p", "web#new")}
    assert await n1.registry.locate([5]) == {5: {"n2"}}


async def test_entries_written_before_issue_15_count_as_idlest(make_engines: MakeEngines) -> None:
    """A rolling upgrade: an entry of an older node (node, conn, expiry: no incarnation, no activity) is not
    live for a node with per-node leases (docs/operations.md, "Scale-out"), and is the first evicted."""
    redis_only(make_engines, "only Redis holds entries written by an older node")
    node = await make_engines()
    assert isinstance(node.registry, RedisRegistry) and node.client is not None
    from hubbub.core.clock import now_ms

    old = f"{node.node_id}\told-conn\t{now_ms() + 60_000}"  # node, conn, expires: no activity
    await node.client.hset(node.registry.keys.user(6), "web", old)
    assert await node.registry.presence([6]) == {}
    await node.registry.register(6, "web#a", "c1", cap=2)
    change = await node.registry.register(6, "web#b", "c2", cap=2)
    assert change.evicted == (Holder(node.node_id, "old-conn"),)
