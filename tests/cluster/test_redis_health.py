"""A node notices a lost Redis within a bounded time (issue 12.6): ``/readyz`` turns 503 within 1 s of Redis
being killed or hanging, and 200 again soon after it is back (docs/cluster.md, "Failure behaviour")."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from hubbub.engines.cluster.redis import RedisCluster
from hubbub.engines.redis_keys import QUEUE_GROUP, Keys
from hubbub.engines.redis_link import RedisLink, connect
from hubbub.node import Node
from tests import servers
from tests.conftest import TIMEOUT_FACTOR, base_url
from tests.conftest import test_config as node_config

pytestmark = pytest.mark.cluster

#: The documented bound (docs/cluster.md): 0.25 s probe interval + 0.5 s probe timeout, with a margin.
DETECTION_S = 1.0


@pytest.fixture
def redis_server() -> Iterator[servers.RedisServer]:
    server = servers.RedisServer().start()
    yield server
    if server.proc is not None:
        os.kill(server.proc.pid, signal.SIGCONT)  # in case a test left it stopped
    server.stop()


@pytest.fixture
async def cluster_node(tmp_path: Path, redis_server: servers.RedisServer) -> AsyncIterator[Node]:
    node = Node(node_config(tmp_path, redis=redis_server.url, jwt_secret="health-test-" + "x" * 32))
    await node.start()
    yield node
    await node.stop()


async def _ready(http: aiohttp.ClientSession, node: Node) -> int:
    async with http.get(base_url(node) + "/readyz", timeout=aiohttp.ClientTimeout(total=2)) as resp:
        return resp.status


async def _seconds_until(check: Callable[[], Awaitable[bool]], limit: float) -> float:
    """Seconds until ``check`` holds, polling every 20 ms; fails after ``limit``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < limit, f"not within {limit} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_readyz_turns_503_within_a_second_of_redis_dying_and_200_when_back(
    cluster_node: Node, redis_server: servers.RedisServer
) -> None:
    async with aiohttp.ClientSession() as http:
        assert await _ready(http, cluster_node) == 200
        await asyncio.sleep(0.3)  # mid-way between two probes: no help from a probe about to run
        redis_server.kill()
        took = await _seconds_until(lambda: _is(http, cluster_node, 503), DETECTION_S * TIMEOUT_FACTOR)
        assert took <= DETECTION_S * TIMEOUT_FACTOR
        redis_server.start()
        await _seconds_until(lambda: _is(http, cluster_node, 200), 3 * TIMEOUT_FACTOR)


async def test_readyz_turns_503_within_a_second_of_redis_hanging(
    cluster_node: Node, redis_server: servers.RedisServer
) -> None:
    """A Redis that accepts nothing and answers nothing (SIGSTOP: a hung host, a cut network) is noticed by
    the probe's timeout, not after a socket's default timeouts."""
    assert redis_server.proc is not None
    async with aiohttp.ClientSession() as http:
        assert await _ready(http, cluster_node) == 200
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            await _seconds_until(lambda: _is(http, cluster_node, 503), DETECTION_S * TIMEOUT_FACTOR)
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        await _seconds_until(lambda: _is(http, cluster_node, 200), 3 * TIMEOUT_FACTOR)


async def test_a_failed_command_marks_redis_down_before_the_next_probe(
    cluster_node: Node, redis_server: servers.RedisServer
) -> None:
    link = cluster_node.redis_link
    assert link is not None and link.up
    redis_server.kill()
    with pytest.raises(Exception):  # noqa: B017  (whatever redis-py raises for a refused connection)
        await cluster_node.hot_state.redis.ping()  # type: ignore[attr-defined]
    assert not link.up


async def _is(http: aiohttp.ClientSession, node: Node, status: int) -> bool:
    return await _ready(http, node) == status


async def test_stream_lag_counts_unread_queue_entries(redis_server: servers.RedisServer) -> None:
    """The lag is read by the cluster membership's probe, of the queue the routing engine reads."""
    keys = Keys("lag:")
    client = connect(redis_server.url, RedisLink())
    cluster = RedisCluster(client, "lagging", url=redis_server.url, link=RedisLink(), keys=keys)
    try:
        await client.xgroup_create(keys.queue("lagging"), QUEUE_GROUP, id="$", mkstream=True)
        for _ in range(3):
            await client.xadd(keys.queue("lagging"), {"d": b""})
        await cluster._update_lag()
        assert cluster.lag == 3
        assert [f.value for f in cluster.figures() if f.name == "node_stream_lag"] == [3]
    finally:
        await cluster.close()
        await client.aclose()
