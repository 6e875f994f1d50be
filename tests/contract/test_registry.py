"""The registry contract (engines/registry/base.py), against MemoryRegistry and RedisRegistry alike; then what
only the Redis one can show: entries of other nodes, renewal, a node's own record after racing logins."""

from __future__ import annotations

import asyncio

from hubbub.engines.registry.base import Holder
from hubbub.engines.registry.redis import RedisRegistry
from hubbub.protocol.close_codes import Close
from tests.contract.nodes import MakeEngines, eventually, make_engines, redis_only

__all__ = ["make_engines"]


async def test_register_unregister_presence(make_engines: MakeEngines) -> None:
    registry = (await make_engines()).registry
    first = await registry.register(1, "web", "c1")
    assert (first.before, first.after, first.replaced) == ((), ("web",), None)
    second = await registry.register(1, "mobile", "c2")
    assert (second.before, second.after) == (("web",), ("mobile", "web"))
    assert await registry.presence([1, 2]) == {1: ("mobile", "web")}
    assert await registry.unregister(1, "web", "stale") is None  # not the holder
    gone = await registry.unregister(1, "web", "c1")
    assert gone is not None and (gone.before, gone.after) == (("mobile", "web"), ("mobile",))
    assert await registry.unregister(1, "web", "c1") is None
    last = await registry.unregister(1, "mobile", "c2")
    assert last is not None and last.after == ()
    assert await registry.presence([1]) == {}
    assert await registry.presence([]) == {}


async def test_same_terminal_names_the_replaced_connection(make_engines: MakeEngines) -> None:
    node = await make_engines()
    registry = node.registry
    await registry.register(1, "web", "c1")
    await registry.register(1, "mobile", "c2")
    change = await registry.register(1, "web", "c3")
    assert change.before == change.after == ("mobile", "web")
    assert change.replaced == Holder(node.node_id, "c1")  # the caller closes it
    # the replaced connection closing late must not free the new one's slot
    assert await registry.unregister(1, "web", "c1") is None
    assert await registry.presence([1]) == {1: ("mobile", "web")}


async def test_registrations_of_one_slot_at_once_leave_exactly_one_holder(make_engines: MakeEngines) -> None:
    node = await make_engines()
    for trial in range(20):
        user = 100 + trial
        conns = [f"r{trial}a", f"r{trial}b", f"r{trial}c"]
        await asyncio.gather(*(node.connect(user, "web", conn) for conn in conns))
        closed = [c for u, code, c in node.hub.closed if u == user and code is Close.REPLACED]
        survivors = [c for c in conns if c not in closed]
        assert len(survivors) == 1 and len(closed) == 2, (closed, conns)
        # the survivor, and only it, holds the slot; a Redis node's own copy of its registrations (what it
        # renews) names the connection Redis kept, or the survivor's entry would expire under it
        if isinstance(node.registry, RedisRegistry):
            assert node.registry._local[user] == {"web": survivors[0]}
        assert await node.registry.presence([user]) == {user: ("web",)}
        for conn in closed:
            assert await node.registry.unregister(user, "web", conn) is None
        assert await node.registry.unregister(user, "web", survivors[0]) is not None


async def test_locate_names_the_nodes_holding_users(make_engines: MakeEngines) -> None:
    node = await make_engines()
    await node.registry.register(1, "web", "c1")
    await node.registry.register(2, "web", "c2")
    assert await node.registry.locate([1, 2, 3]) == {1: {node.node_id}, 2: {node.node_id}}
    assert await node.registry.locate([1, 2], conn_id="c2") == {2: {node.node_id}}
    assert await node.registry.locate([]) == {}


# -- several nodes (Redis only) -----------------------------------------------------------------------
async def test_presence_and_locate_span_the_nodes(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "one process holds every registration of the in-process registry")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    await n1.registry.register(1, "web", "n1/1")
    await n2.registry.register(1, "mobile", "n2/1")
    assert await n1.registry.presence([1]) == {1: ("mobile", "web")}
    assert await n2.registry.locate([1]) == {1: {"n1", "n2"}}


async def test_a_dead_nodes_entries_leave_presence(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "one process cannot outlive itself")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    await n2.registry.register(8, "web", "n2/8")
    await n2.halt()
    await n1.client.delete(n2.cluster.keys.alive("n2"))  # type: ignore[union-attr,attr-defined]
    n1.cluster._alive_cache.clear()  # type: ignore[attr-defined]
    assert await n1.registry.presence([8]) == {}


async def test_recovery_closes_a_connection_whose_slot_was_taken(make_engines: MakeEngines) -> None:
    """A replacement whose close was lost (with Redis's state): the rewrite after recovery finds another
    holder and closes its own connection instead of overwriting it."""
    redis_only(make_engines, "memory entries are never rewritten")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    await n1.connect(5, "web", "n1/5")
    change = await n2.registry.register(5, "web", "n2/5")  # its close to n1 is never sent
    assert change.replaced == Holder("n1", "n1/5")
    await n1.cluster.recover("test")
    await eventually(lambda: (5, Close.REPLACED, "n1/5") in n1.hub.closed)
    assert await n1.registry.presence([5]) == {5: ("web",)}
    assert await n1.registry.locate([5]) == {5: {"n2"}}


async def test_upkeep_does_not_grow_with_online_users(make_engines: MakeEngines) -> None:
    """Per-node leases: with 300 users online, a second of running costs the same Redis commands as with 3."""
    redis_only(make_engines, "the in-process registry sends no commands")

    async def idle_commands(users: int, base: int) -> int:
        node = await make_engines(f"idle{users}")
        for uid in range(base, base + users):
            await node.registry.register(uid, "web", f"c{uid}")
        link = node.cluster.link  # type: ignore[attr-defined]
        before = link.commands
        await asyncio.sleep(1.2)  # several lease renewals and sweeps
        return int(link.commands - before)

    few, many = await idle_commands(3, 1000), await idle_commands(300, 2000)
    # the same lease, sweep and probe commands, within timing jitter (per-user renewals: ~1,000 more)
    assert many <= few + 20, (few, many)


async def test_a_dead_nodes_entries_are_swept(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "one process cannot outlive itself")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    for uid in (21, 22):
        await n2.registry.register(uid, "web", f"n2/{uid}")
    await n1.registry.register(22, "mobile", "n1/22")
    await n2.halt()
    await n1.client.delete(n2.cluster.keys.alive("n2"))  # type: ignore[union-attr,attr-defined]
    n1.cluster._alive_cache.clear()  # type: ignore[attr-defined]
    assert await n1.registry.presence([21, 22]) == {22: ("mobile",)}  # offline at once, before the sweep
    registry = n1.registry
    assert isinstance(registry, RedisRegistry)
    await registry.sweep()
    assert registry.swept == 1
    keys = n1.cluster.keys  # type: ignore[attr-defined]
    assert not await n1.client.exists(keys.user(21))  # type: ignore[union-attr]
    assert list(await n1.client.hgetall(keys.user(22))) == [b"mobile"]  # type: ignore[union-attr]


async def test_a_restarted_node_does_not_inherit_its_predecessors_entries(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "one process cannot outlive itself")
    old = await make_engines("same")
    await old.registry.register(31, "web", "old/31")
    await old.halt()  # died without freeing its slot
    new = await make_engines("same")
    assert new.cluster.incarnation != old.cluster.incarnation
    assert await new.registry.presence([31]) == {}
    assert await new.registry.locate([31]) == {}
    assert await new.registry.locate([31], stale=True) == {31: {"same"}}  # a close still reaches it
