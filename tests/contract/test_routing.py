"""The routing contract (engines/routing/base.py), against MemoryRouting and RedisRouting alike; then what
only the cluster can show: several nodes, dead nodes, a restart that reclaims, a Redis that restarts empty."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from hubbub.engines.cluster.redis import RedisCluster
from hubbub.engines.redis_keys import QUEUE_GROUP, Keys
from hubbub.engines.redis_link import RedisLink, connect
from hubbub.engines.registry.redis import RedisRegistry
from hubbub.engines.routing.base import Event
from hubbub.engines.routing.redis import RedisRouting
from hubbub.protocol.close_codes import Close
from tests import servers
from tests.contract.nodes import (
    Engines,
    FakeHub,
    MakeEngines,
    eventually,
    make_engines,
    redis_only,
    start_redis_engines,
)

__all__ = ["make_engines"]


# -- the shared contract ------------------------------------------------------------------------------
async def test_publish_reaches_every_connection_in_order(make_engines: MakeEngines) -> None:
    node = await make_engines()
    await node.connect(1, "web", "a-web")
    await node.connect(1, "mobile", "a-mob")
    await node.connect(2, "web", "b-web")
    for i in range(20):
        await node.routing.publish(
            [Event((1, 2, 3), b"m%d" % i, exclude_conn="a-web"), Event((2,), b"x%d" % i)]
        )
    hub = node.hub
    assert hub.received["a-web"] == []
    assert hub.received["a-mob"] == [b"m%d" % i for i in range(20)]
    assert hub.received["b-web"] == [p for i in range(20) for p in (b"m%d" % i, b"x%d" % i)]
    await node.routing.publish([])


async def test_disconnect_closes_matching_connections(make_engines: MakeEngines) -> None:
    node = await make_engines()
    await node.connect(1, "web", "c1")
    await node.connect(1, "mobile", "c2")
    await node.routing.disconnect(1, Close.REVOKED, "bye", conn_id="c2")
    assert node.hub.closed == [(1, Close.REVOKED, "c2")]
    await node.routing.disconnect(1, Close.REVOKED, "bye")
    assert node.hub.closed[-1] == (1, Close.REVOKED, "c1")


async def test_a_takeover_closes_the_replaced_connection(make_engines: MakeEngines) -> None:
    node = await make_engines()
    await node.connect(1, "web", "c1")
    await node.connect(1, "web", "c2")
    assert node.hub.closed == [(1, Close.REPLACED, "c1")]


async def test_broadcast_reaches_this_node_too(make_engines: MakeEngines) -> None:
    node = await make_engines()
    await node.routing.broadcast(b"opaque")
    assert node.hub.broadcasts == [b"opaque"]


# -- several nodes (Redis only) -----------------------------------------------------------------------
async def _cluster(make_engines: MakeEngines) -> list[Engines]:
    redis_only(make_engines, "one process holds every connection of in-process routing")
    return [await make_engines(f"n{i}") for i in (1, 2, 3)]


def _xadds(node: Engines) -> int:
    assert isinstance(node.routing, RedisRouting)
    return node.routing.xadds


async def test_cross_node_delivery_is_one_queue_write_per_node(make_engines: MakeEngines) -> None:
    n1, n2, n3 = await _cluster(make_engines)
    await n1.connect(1, "web", "n1/1")
    for uid in (2, 3, 4):
        await n2.connect(uid, "web", f"n2/{uid}")
    await n3.connect(5, "web", "n3/5")
    await n3.connect(2, "mobile", "n3/2m")
    before = _xadds(n1)
    await n1.routing.publish([Event((1, 2, 3, 4, 5), b"hello"), Event((2, 3), b"again", exclude_conn="n2/3")])
    assert _xadds(n1) - before == 2  # n2 and n3 once each, whatever the number of recipients and events
    h1, h2, h3 = n1.hub, n2.hub, n3.hub
    assert h1.received["n1/1"] == [b"hello"]
    await eventually(
        lambda: h2.received["n2/2"] == [b"hello", b"again"] and h3.received["n3/2m"] == [b"hello", b"again"]
    )
    assert h2.received["n2/3"] == [b"hello"] and h2.received["n2/4"] == [b"hello"]
    assert h3.received["n3/5"] == [b"hello"]
    assert await n3.registry.presence([1, 2, 6]) == {1: ("web",), 2: ("mobile", "web")}


async def test_only_conn_reaches_that_one_connection_across_nodes(make_engines: MakeEngines) -> None:
    """Call signalling goes to the one device in the call (``Event.only_conn``), wherever it is: the field
    survives the queue's wire format."""
    n1, n2, n3 = await _cluster(make_engines)
    await n2.connect(2, "web", "n2/2")
    await n3.connect(2, "mobile", "n3/2m")
    await n1.routing.publish([Event((2,), b"sdp", only_conn="n3/2m"), Event((2,), b"all")])
    await eventually(lambda: n3.hub.received["n3/2m"] == [b"sdp", b"all"] and n2.hub.received["n2/2"] == [b"all"])


async def test_broadcast_reaches_every_live_node_once(make_engines: MakeEngines) -> None:
    n1, n2, n3 = await _cluster(make_engines)
    before = _xadds(n1)
    await n1.routing.broadcast(b"news-1")
    await n1.routing.broadcast(b"news-2")
    assert _xadds(n1) - before == 4  # two per broadcast: n2 and n3
    assert n1.hub.broadcasts == [b"news-1", b"news-2"]
    await eventually(
        lambda: n2.hub.broadcasts == n1.hub.broadcasts and n3.hub.broadcasts == n1.hub.broadcasts
    )


async def test_replacement_across_nodes(make_engines: MakeEngines) -> None:
    n1, n2, _ = await _cluster(make_engines)
    await n1.connect(7, "web", "n1/7")
    await n2.connect(7, "web", "n2/7")
    await eventually(lambda: n1.hub.closed == [(7, Close.REPLACED, "n1/7")])
    assert await n1.registry.unregister(7, "web", "n1/7") is None
    assert await n1.registry.presence([7]) == {7: ("web",)}
    await n1.routing.disconnect(7, Close.REVOKED, "password changed")
    await eventually(lambda: (7, Close.REVOKED, "n2/7") in n2.hub.closed)


async def test_dead_node_gets_no_entries_and_loses_its_queue(make_engines: MakeEngines) -> None:
    n1, n2, _ = await _cluster(make_engines)
    await n2.connect(8, "web", "n2/8")
    await n2.halt()  # n2 stops renewing anything, as if killed
    r = n1.client
    assert r is not None
    keys = n1.cluster.keys  # type: ignore[attr-defined]
    assert await r.exists(keys.queue("n2"))
    await r.delete(keys.alive("n2"))  # its liveness expired
    n1.cluster._alive_cache.clear()  # type: ignore[attr-defined]
    await n1.routing.publish([Event((8,), b"lost")])
    assert not await r.exists(keys.queue("n2"))
    assert await n1.registry.presence([8]) == {}


async def test_restart_with_the_same_node_id_reclaims_pending_entries(make_engines: MakeEngines) -> None:
    redis_only(make_engines, "only a Redis stream outlives its process")
    n1, n2 = await make_engines("n1"), await make_engines("n2")
    await n2.registry.register(9, "web", "n2/9")
    await n2.halt()
    await n1.routing.publish([Event((9,), b"pending")])
    # the dying process read the entry but crashed before XACK
    r = n1.client
    assert r is not None
    key = n1.cluster.keys.queue("n2")  # type: ignore[attr-defined]
    read = await r.xreadgroup(QUEUE_GROUP, "n2", {key: ">"}, count=10)
    assert len(read[0][1]) == 1
    hub = FakeHub()
    hub.attach(9, "n2/new")  # the user is back on the restarted node
    # claims and delivers what the dead process never acknowledged
    reborn = await start_redis_engines(make_engines.url, "n2", make_engines.prefix, hub=hub)  # type: ignore[attr-defined]
    try:
        assert hub.received["n2/new"] == [b"pending"]
        assert (await r.xpending(key, QUEUE_GROUP))["pending"] == 0
    finally:
        await reborn.close()


async def test_redis_restarted_empty_is_recovered() -> None:
    server = servers.RedisServer().start()
    nodes: list[Engines] = []
    try:
        n1 = await start_redis_engines(server.url, "n1", "r:")
        n2 = await start_redis_engines(server.url, "n2", "r:")
        nodes += [n1, n2]
        await n1.connect(1, "web", "n1/1")
        await n2.connect(2, "web", "n2/2")
        await n1.routing.publish([Event((2,), b"before")])
        await eventually(lambda: n2.hub.received["n2/2"] == [b"before"])
        server.restart()
        probe = aioredis.Redis.from_url(server.url)
        assert await probe.dbsize() == 0
        resyncs = lambda n: n.cluster.resyncs  # noqa: E731
        await eventually(lambda: resyncs(n1) >= 1 and resyncs(n2) >= 1, timeout=10)
        assert await n1.registry.presence([1, 2]) == {1: ("web",), 2: ("web",)}
        await eventually(lambda: _try_publish(n1, n2.hub), timeout=10)
        await probe.aclose()
    finally:
        for n in nodes:
            await n.close()
        server.stop()


def _try_publish(node: Engines, hub: FakeHub) -> bool:
    if b"after" in hub.received["n2/2"]:
        return True
    asyncio.get_running_loop().create_task(node.routing.publish([Event((2,), b"after")]))
    return False


async def test_a_process_that_is_no_node_still_reaches_the_nodes(make_engines: MakeEngines) -> None:
    """``hubbub admin`` routes without joining (no sink, no queue): its pushes, closes and broadcasts still
    reach the nodes. Its broadcasts used to go nowhere (the broker returned early without a sink), so a group
    dismissed or frozen from the CLI left every node's roster of it standing until it expired."""
    redis_only(make_engines, "in one process there is no other node to reach")
    n1 = await make_engines("n1")
    await n1.connect(1, "web", "n1/1")
    # what Root(tool=True) builds for the admin CLI: the three engines, none of them started
    keys = Keys(make_engines.prefix)  # type: ignore[attr-defined]
    client = connect(make_engines.url, RedisLink())  # type: ignore[attr-defined]
    cluster = RedisCluster(client, "admin-cli", url=make_engines.url, link=RedisLink(), keys=keys)  # type: ignore[attr-defined]
    cli = RedisRouting(
        client, "admin-cli", RedisRegistry(client, "admin-cli", cluster, keys=keys), cluster, keys=keys
    )
    await cli.publish([Event((1,), b"notice")])
    await cli.broadcast(b"group changed")
    await cli.disconnect(1, Close.REVOKED, "banned")
    await eventually(
        lambda: n1.hub.broadcasts == [b"group changed"] and (1, Close.REVOKED, "n1/1") in n1.hub.closed
    )
    assert n1.hub.received["n1/1"] == [b"notice"]
    await cli.close()
    await cluster.close()
    await client.aclose()
