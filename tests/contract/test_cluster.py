"""The cluster membership contract (engines/cluster/base.py), against MemoryCluster and RedisCluster alike;
then what only Redis can show: other nodes, dead nodes, node numbers."""

from __future__ import annotations

import re

from hubbub.core.clock import now_ms
from hubbub.engines.cluster.base import NodeLoad
from tests.contract.nodes import MakeEngines, make_engines, redis_only

__all__ = ["make_engines"]


async def test_this_node_is_alive_and_listed(make_engines: MakeEngines) -> None:
    cluster = (await make_engines("n1")).cluster
    assert await cluster.is_alive("n1")
    assert await cluster.live_nodes() == ["n1"]
    await cluster.ping()


async def test_load_reports_are_listed(make_engines: MakeEngines) -> None:
    cluster = (await make_engines("n1")).cluster
    await cluster.report_load(NodeLoad(node="n1", connections=3, users=2, reported_at=now_ms()))
    [load] = await cluster.nodes()
    assert (load.node, load.connections, load.users, load.alive) == ("n1", 3, 2, True)


async def test_node_numbers(make_engines: MakeEngines) -> None:
    n1 = await make_engines("n1")
    if make_engines.kind == "memory":  # type: ignore[attr-defined]
        assert await n1.cluster.lease_node_number() is None  # one node derives its own
        return
    n2 = await make_engines("n2")
    numbers = {await n1.cluster.lease_node_number(), await n2.cluster.lease_node_number()}
    assert len(numbers) == 2 and all(n is not None and 0 <= n < 1024 for n in numbers)


async def test_other_nodes_and_dead_ones(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "a cluster of one has no other node")
    n1, n2, n3 = await make_engines("n1"), await make_engines("n2"), await make_engines("n3")
    assert await n1.cluster.live_nodes() == ["n1", "n2", "n3"]
    await n2.cluster.report_load(NodeLoad(node="n2", reported_at=now_ms()))
    await n3.halt()
    await n1.client.delete(n3.cluster.keys.alive("n3"))  # type: ignore[union-attr,attr-defined]  (expired)
    n1.cluster._alive_cache.clear()  # type: ignore[attr-defined]
    assert not await n1.cluster.is_alive("n3")
    assert await n1.cluster.live_nodes() == ["n1", "n2"]
    listed = {load.node: load.alive for load in await n1.cluster.nodes()}
    assert listed == {"n1": True, "n2": True}  # n3 left the node set when found dead (it never reported)
    await n2.cluster.close()
    assert [load.node for load in await n1.cluster.nodes()] == ["n1"]


async def test_every_key_is_hash_tagged(make_engines: MakeEngines) -> None:
    """Redis Cluster safe (docs/architecture.md, "Cluster"): every key the three engines write carries a hash
    tag, so each script's keys, and each node's or user's keys, stay in one slot."""
    redis_only(make_engines, "no keys in one process")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    await n1.connect(1, "web", "n1/1")
    await n2.connect(1, "web", "n2/1")  # a takeover across nodes
    await n1.cluster.report_load(NodeLoad(node="n1", reported_at=now_ms()))
    await n1.cluster.lease_node_number()
    await n1.routing.broadcast(b"x")
    prefix = make_engines.prefix  # type: ignore[attr-defined]
    assert n1.client is not None
    keys = [k.decode() async for k in n1.client.scan_iter(match=f"{prefix}*")]
    assert len(keys) >= 7, keys  # user hash, 2 alive, 2 queues, node set, load, numbers
    untagged = [k for k in keys if not re.fullmatch(rf"{re.escape(prefix)}\{{[^{{}}]+\}}(:\w+)*", k)]
    assert not untagged, untagged
