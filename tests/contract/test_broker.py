"""The broker contract (engines/broker/base.py), against MemoryBroker and RedisBroker with the same tests;
then what only a cluster broker can show: several nodes, dead nodes, a Redis that restarts empty."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
import redis.asyncio as aioredis

from hubbub.engines.broker.base import Broker, Event, News
from hubbub.engines.broker.memory import MemoryBroker
from hubbub.engines.broker.redis import RedisBroker
from hubbub.protocol.close_codes import Close
from tests import servers


class FakeHub:
    """A LocalSink that behaves like gateway.hub.Hub: connections by user, writes recorded per connection."""

    def __init__(self) -> None:
        self.conns: dict[int, list[str]] = {}
        self.received: dict[str, list[bytes]] = {}
        self.closed: list[tuple[int, Close, str]] = []
        self.deliver_calls = 0
        self.news_seen: list[News] = []

    def news(self, items: Sequence[News]) -> None:
        self.news_seen.extend(items)

    def attach(self, user_id: int, conn_id: str) -> None:
        self.conns.setdefault(user_id, []).append(conn_id)
        self.received.setdefault(conn_id, [])

    def deliver(self, events: Sequence[Event]) -> None:
        self.deliver_calls += 1
        for event in events:
            for uid in event.recipients:
                for conn in self.conns.get(uid, ()):
                    if conn != event.exclude_conn:
                        self.received[conn].append(event.payload)

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        for conn in list(self.conns.get(user_id, ())):
            if conn_id is None or conn == conn_id:
                self.closed.append((user_id, code, conn))
                self.conns[user_id].remove(conn)


MakeBroker = Callable[..., Awaitable[tuple[Broker, FakeHub]]]


@pytest.fixture(params=["memory", "redis"])
async def make_broker(request: pytest.FixtureRequest) -> AsyncIterator[MakeBroker]:
    made: list[Broker] = []
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    url = request.getfixturevalue("redis_server").url if request.param == "redis" else ""

    async def make(node_id: str = "n1") -> tuple[Broker, FakeHub]:
        broker: Broker
        if request.param == "memory":
            broker = MemoryBroker(node_id)
        else:
            broker = RedisBroker(
                url, node_id, prefix=prefix, refresh_s=0.3, alive_interval_s=0.2, alive_ttl_s=1
            )
        hub = FakeHub()
        await broker.start(hub)
        made.append(broker)
        return broker, hub

    make.kind = request.param  # type: ignore[attr-defined]
    yield make
    for broker in made:
        await broker.close()


async def connect(broker: Broker, hub: FakeHub, user_id: int, terminal: str, conn_id: str) -> None:
    hub.attach(user_id, conn_id)
    await broker.register(user_id, terminal, conn_id)


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# -- the shared contract ------------------------------------------------------------------------------
async def test_register_unregister_presence(make_broker: MakeBroker) -> None:
    broker, hub = await make_broker()
    first = await broker.register(1, "web", "c1")
    assert (first.before, first.after) == ((), ("web",))
    second = await broker.register(1, "mobile", "c2")
    assert (second.before, second.after) == (("web",), ("mobile", "web"))
    assert await broker.presence([1, 2]) == {1: ("mobile", "web")}
    assert await broker.unregister(1, "web", "stale") is None  # not the holder
    gone = await broker.unregister(1, "web", "c1")
    assert gone is not None and (gone.before, gone.after) == (("mobile", "web"), ("mobile",))
    assert await broker.unregister(1, "web", "c1") is None
    last = await broker.unregister(1, "mobile", "c2")
    assert last is not None and last.after == ()
    assert await broker.presence([1]) == {}
    assert await broker.presence([]) == {}


async def test_same_terminal_replaces_the_old_connection(make_broker: MakeBroker) -> None:
    broker, hub = await make_broker()
    await connect(broker, hub, 1, "web", "c1")
    await connect(broker, hub, 1, "mobile", "c2")
    change = await broker.register(1, "web", "c3")
    assert change.before == change.after == ("mobile", "web")
    assert hub.closed == [(1, Close.REPLACED, "c1")]
    # the replaced connection closing late must not free the new one's slot
    assert await broker.unregister(1, "web", "c1") is None
    assert await broker.presence([1]) == {1: ("mobile", "web")}


async def test_registrations_of_one_slot_at_once_leave_exactly_one_holder(make_broker: MakeBroker) -> None:
    broker, hub = await make_broker()
    for trial in range(20):
        user = 100 + trial
        conns = [f"r{trial}a", f"r{trial}b", f"r{trial}c"]
        for conn in conns:
            hub.attach(user, conn)
        await asyncio.gather(*(broker.register(user, "web", conn) for conn in conns))
        closed = [c for u, code, c in hub.closed if u == user and code is Close.REPLACED]
        survivors = [c for c in conns if c not in closed]
        assert len(survivors) == 1 and len(closed) == 2, (closed, conns)
        # the survivor, and only it, holds the slot; a Redis node's own copy of its registrations (what it
        # renews) names the connection Redis kept, or the survivor's entry would expire under it
        if isinstance(broker, RedisBroker):
            assert broker._local[user] == {"web": survivors[0]}
        assert await broker.presence([user]) == {user: ("web",)}
        for conn in closed:
            assert await broker.unregister(user, "web", conn) is None
        assert await broker.unregister(user, "web", survivors[0]) is not None


async def test_publish_reaches_every_connection_in_order(make_broker: MakeBroker) -> None:
    broker, hub = await make_broker()
    await connect(broker, hub, 1, "web", "a-web")
    await connect(broker, hub, 1, "mobile", "a-mob")
    await connect(broker, hub, 2, "web", "b-web")
    for i in range(20):
        await broker.publish([Event((1, 2, 3), b"m%d" % i, exclude_conn="a-web"), Event((2,), b"x%d" % i)])
    assert hub.received["a-web"] == []
    assert hub.received["a-mob"] == [b"m%d" % i for i in range(20)]
    assert hub.received["b-web"] == [p for i in range(20) for p in (b"m%d" % i, b"x%d" % i)]
    await broker.publish([])


async def test_disconnect_closes_matching_connections(make_broker: MakeBroker) -> None:
    broker, hub = await make_broker()
    await connect(broker, hub, 1, "web", "c1")
    await connect(broker, hub, 1, "mobile", "c2")
    await broker.disconnect(1, Close.REVOKED, "bye", conn_id="c2")
    assert hub.closed == [(1, Close.REVOKED, "c2")]
    await broker.disconnect(1, Close.REVOKED, "bye")
    assert hub.closed[-1] == (1, Close.REVOKED, "c1")


# -- several nodes (Redis only) -----------------------------------------------------------------------
@pytest.fixture
async def cluster(make_broker: MakeBroker) -> list[tuple[RedisBroker, FakeHub]]:
    if make_broker.kind != "redis":  # type: ignore[attr-defined]
        pytest.skip("one process holds every connection of the in-process broker")
    nodes = [await make_broker(f"n{i}") for i in (1, 2, 3)]
    return [(b, h) for b, h in nodes if isinstance(b, RedisBroker)]


async def test_cross_node_delivery_is_one_queue_write_per_node(
    cluster: list[tuple[RedisBroker, FakeHub]],
) -> None:
    (b1, h1), (b2, h2), (b3, h3) = cluster
    await connect(b1, h1, 1, "web", "n1/1")
    for uid in (2, 3, 4):
        await connect(b2, h2, uid, "web", f"n2/{uid}")
    await connect(b3, h3, 5, "web", "n3/5")
    await connect(b3, h3, 2, "mobile", "n3/2m")
    before = b1.xadds
    await b1.publish([Event((1, 2, 3, 4, 5), b"hello"), Event((2, 3), b"again", exclude_conn="n2/3")])
    assert b1.xadds - before == 2  # n2 and n3 once each, whatever the number of recipients and events
    assert h1.received["n1/1"] == [b"hello"]
    await eventually(
        lambda: h2.received["n2/2"] == [b"hello", b"again"] and h3.received["n3/2m"] == [b"hello", b"again"]
    )
    assert h2.received["n2/3"] == [b"hello"] and h2.received["n2/4"] == [b"hello"]
    assert h3.received["n3/5"] == [b"hello"]
    assert await b3.presence([1, 2, 6]) == {1: ("web",), 2: ("mobile", "web")}


async def test_announce_reaches_every_live_node_once(cluster: list[tuple[RedisBroker, FakeHub]]) -> None:
    (b1, h1), (b2, h2), (b3, h3) = cluster
    before = b1.xadds
    changed = News("g:3", 2, group_changed=True, signal=False)  # a pushed group's change: drop rosters
    await b1.announce([News("g:1", 5), News("g:2", 9, mentions=(3,)), changed])
    assert b1.xadds - before == 2
    assert [n.conv for n in h1.news_seen] == ["g:1", "g:2", "g:3"]
    await eventually(lambda: h2.news_seen == h1.news_seen and h3.news_seen == h1.news_seen)


async def test_replacement_across_nodes(cluster: list[tuple[RedisBroker, FakeHub]]) -> None:
    (b1, h1), (b2, h2), _ = cluster
    await connect(b1, h1, 7, "web", "n1/7")
    change = await b2.register(7, "web", "n2/7")
    h2.attach(7, "n2/7")
    assert change.before == change.after == ("web",)
    await eventually(lambda: h1.closed == [(7, Close.REPLACED, "n1/7")])
    assert await b1.unregister(7, "web", "n1/7") is None
    assert await b1.presence([7]) == {7: ("web",)}
    await b1.disconnect(7, Close.REVOKED, "password changed")
    await eventually(lambda: (7, Close.REVOKED, "n2/7") in h2.closed)


async def test_dead_node_gets_no_entries_and_loses_its_queue(
    cluster: list[tuple[RedisBroker, FakeHub]],
) -> None:
    (b1, h1), (b2, h2), _ = cluster
    await connect(b2, h2, 8, "web", "n2/8")
    await b2._halt()  # n2 stops renewing anything, as if killed
    r = b1.redis
    assert await r.exists(b2._queue_key("n2"))
    await r.delete(b2._alive_key("n2"))  # its liveness expired
    b1._alive_cache.clear()
    await b1.publish([Event((8,), b"lost")])
    assert not await r.exists(b2._queue_key("n2"))
    assert await b1.presence([8]) == {}


async def test_restart_with_the_same_node_id_reclaims_pending_entries(make_broker: MakeBroker) -> None:
    if make_broker.kind != "redis":  # type: ignore[attr-defined]
        pytest.skip("only a Redis stream outlives its process")
    b1, _ = await make_broker("n1")
    b2, _ = await make_broker("n2")
    assert isinstance(b1, RedisBroker) and isinstance(b2, RedisBroker)
    await b2.register(9, "web", "n2/9")
    await b2._halt()
    await b1.publish([Event((9,), b"pending")])
    # the dying process read the entry but crashed before XACK
    key = b2._queue_key("n2")
    read = await b1.redis.xreadgroup("nodes", "n2", {key: ">"}, count=10)
    assert len(read[0][1]) == 1
    hub = FakeHub()
    hub.attach(9, "n2/new")  # the user is back on the restarted node
    reborn = RedisBroker(_url(b1), "n2", prefix=b2.prefix)
    await reborn.start(hub)  # claims and delivers what the dead process never acknowledged
    try:
        assert hub.received["n2/new"] == [b"pending"]
        assert (await b1.redis.xpending(key, "nodes"))["pending"] == 0
    finally:
        await reborn.close()


async def test_redis_restarted_empty_is_recovered(tmp_path: object) -> None:
    server = servers.RedisServer().start()
    brokers: list[RedisBroker] = []
    try:
        (b1, h1), (b2, h2) = [
            await _start(
                RedisBroker(
                    server.url, f"n{i}", prefix="r:", refresh_s=0.3, alive_interval_s=0.2, alive_ttl_s=1
                )
            )
            for i in (1, 2)
        ]
        brokers += [b1, b2]
        await connect(b1, h1, 1, "web", "n1/1")
        await connect(b2, h2, 2, "web", "n2/2")
        await b1.publish([Event((2,), b"before")])
        await eventually(lambda: h2.received["n2/2"] == [b"before"])
        server.restart()
        probe = aioredis.Redis.from_url(server.url)
        assert await probe.dbsize() == 0
        await eventually(lambda: b1.resyncs >= 1 and b2.resyncs >= 1, timeout=10)
        assert await b1.presence([1, 2]) == {1: ("web",), 2: ("web",)}
        await eventually(lambda: _try_publish(b1, h2), timeout=10)
        await probe.aclose()
    finally:
        for b in brokers:
            await b.close()
        server.stop()


def _url(broker: RedisBroker) -> str:
    kwargs = broker.redis.get_connection_kwargs()
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


async def _start(broker: RedisBroker) -> tuple[RedisBroker, FakeHub]:
    hub = FakeHub()
    await broker.start(hub)
    return broker, hub


def _try_publish(broker: RedisBroker, hub: FakeHub) -> bool:
    if b"after" in hub.received["n2/2"]:
        return True
    asyncio.get_running_loop().create_task(broker.publish([Event((2,), b"after")]))
    return False
