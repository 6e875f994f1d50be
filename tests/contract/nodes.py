"""What the routing, registry and cluster contract suites share: a fake hub, and one node's three engines of
one kind (memory, or Redis against the session's real redis-server or Redis Cluster), each test under its own key prefix."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from hubbub.engines.cluster.base import Cluster
from hubbub.engines.cluster.memory import MemoryCluster
from hubbub.engines.cluster.redis import RedisCluster
from hubbub.engines.redis_keys import Keys
from hubbub.engines.redis_link import RedisLink, connect
from hubbub.engines.registry.base import Registry
from hubbub.engines.registry.memory import MemoryRegistry
from hubbub.engines.registry.redis import RedisRegistry
from hubbub.engines.routing.base import Event, Routing
from hubbub.engines.routing.memory import MemoryRouting
from hubbub.engines.routing.redis import RedisRouting
from hubbub.protocol.close_codes import Close
from tests.contract.conftest import REDIS_FLAVOURS, redis_url


class FakeHub:
    """A LocalSink that behaves like gateway.hub.Hub: connections by user, writes recorded per connection."""

    def __init__(self) -> None:
        self.conns: dict[int, list[str]] = {}
        self.received: dict[str, list[bytes]] = {}
        self.closed: list[tuple[int, Close, str]] = []
        self.deliver_calls = 0
        self.broadcasts: list[bytes] = []

    def attach(self, user_id: int, conn_id: str) -> None:
        self.conns.setdefault(user_id, []).append(conn_id)
        self.received.setdefault(conn_id, [])

    def deliver(self, events: Sequence[Event]) -> None:
        self.deliver_calls += 1
        for event in events:
            for uid in event.recipients:
                for conn in self.conns.get(uid, ()):
                    if conn != event.exclude_conn and event.only_conn in (None, conn):
                        self.received[conn].append(event.payload)

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        for conn in list(self.conns.get(user_id, ())):
            if conn_id is None or conn == conn_id:
                self.closed.append((user_id, code, conn))
                self.conns[user_id].remove(conn)

    def broadcast(self, payload: bytes) -> None:
        self.broadcasts.append(payload)


@dataclass
class Engines:
    """One node's cluster engines, started with ``hub`` as their local side (as ``hubbub/node.py`` does)."""

    node_id: str
    cluster: Cluster
    registry: Registry
    routing: Routing
    hub: FakeHub
    client: aioredis.Redis | None = None

    async def connect(self, user_id: int, terminal: str, conn_id: str) -> None:
        """What the presence service does for a login: take the slot, close what it replaced."""
        self.hub.attach(user_id, conn_id)
        change = await self.registry.register(user_id, terminal, conn_id)
        if change.replaced is not None:
            await self.routing.disconnect(
                user_id,
                Close.REPLACED,
                "replaced",
                conn_id=change.replaced.conn_id,
                node=change.replaced.node,
            )

    async def halt(self) -> None:
        """Stop every background task, as a node that was killed (Redis only)."""
        assert isinstance(self.routing, RedisRouting) and isinstance(self.registry, RedisRegistry)
        assert isinstance(self.cluster, RedisCluster)
        await self.routing.halt()
        await self.registry.halt()
        await self.cluster.halt()

    async def close(self) -> None:
        await self.routing.close()
        await self.registry.close()
        await self.cluster.close()
        if self.client is not None:
            await self.client.aclose()


MakeEngines = Callable[..., Awaitable[Engines]]


async def start_redis_engines(url: str, node_id: str, prefix: str, *, hub: FakeHub | None = None) -> Engines:
    keys = Keys(prefix)
    link = RedisLink()
    client = connect(url, link)
    cluster = RedisCluster(
        client, node_id, url=url, link=link, keys=keys, alive_interval_s=0.2, alive_ttl_s=1
    )
    registry = RedisRegistry(client, node_id, cluster, keys=keys, sweep_s=0.3)
    routing = RedisRouting(client, node_id, registry, cluster, keys=keys)
    engines = Engines(node_id, cluster, registry, routing, hub or FakeHub(), client)
    await routing.start(engines.hub)
    await cluster.start()
    await registry.start(engines.hub)
    return engines


@pytest.fixture(params=["memory", *REDIS_FLAVOURS])
async def make_engines(request: pytest.FixtureRequest) -> AsyncIterator[MakeEngines]:
    made: list[Engines] = []
    prefix = f"t{uuid.uuid4().hex[:8]}:"
    url = redis_url(request) if request.param != "memory" else ""

    async def make(node_id: str = "n1", hub: FakeHub | None = None) -> Engines:
        if request.param == "memory":
            hub = hub or FakeHub()
            engines = Engines(
                node_id, MemoryCluster(node_id), MemoryRegistry(node_id), MemoryRouting(node_id), hub
            )
            await engines.cluster.start()
            await engines.routing.start(hub)
            await engines.registry.start(hub)
        else:
            engines = await start_redis_engines(url, node_id, prefix, hub=hub)
        made.append(engines)
        return engines

    make.kind = request.param  # type: ignore[attr-defined]
    make.prefix = prefix  # type: ignore[attr-defined]
    make.url = url  # type: ignore[attr-defined]
    yield make
    for engines in made:
        await engines.close()


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def redis_only(make: MakeEngines, why: str) -> None:
    if make.kind == "memory":  # type: ignore[attr-defined]
        pytest.skip(why)
