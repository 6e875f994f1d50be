"""The rate-limiter contract (engines/ratelimit/base.py), against the in-process and the Redis limiter."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.ratelimit.redis import LEASE_FRACTION, RedisRateLimiter
from hubbub.engines.redis_link import RedisLink, connect
from tests import servers
from tests.contract.conftest import REDIS_FLAVOURS, redis_url


@pytest.fixture(params=["memory", *REDIS_FLAVOURS])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    redis_limiter = RedisRateLimiter(redis_url(request), prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield redis_limiter
    await redis_limiter.close()


async def test_burst_then_refused_with_the_wait(limiter: RateLimiter) -> None:
    assert [await limiter.take("k", 10.0, 5) for _ in range(5)] == [0.0] * 5
    wait = await limiter.take("k", 10.0, 5)
    assert 0.05 < wait <= 0.1 + 1e-6
    assert await limiter.take("other", 10.0, 5) == 0.0  # keys are independent


async def test_refills_at_the_rate(limiter: RateLimiter) -> None:
    for _ in range(3):
        assert await limiter.take("r", 20.0, 3) == 0.0
    assert await limiter.take("r", 20.0, 3) > 0
    await asyncio.sleep(0.12)  # 2.4 tokens back (up to the burst of 3 on a slow machine)
    taken = 0
    while await limiter.take("r", 20.0, 3) == 0.0:
        taken += 1
        assert taken <= 3, "refilled past the burst"
    assert taken >= 2


async def test_concurrent_takes_never_exceed_the_burst(limiter: RateLimiter) -> None:
    results = await asyncio.gather(*(limiter.take("c", 0.001, 10) for _ in range(40)))
    assert sum(1 for r in results if r == 0.0) == 10


async def test_redis_limiter_falls_back_to_this_node_when_redis_is_down() -> None:
    server = servers.RedisServer().start()
    limiter = RedisRateLimiter(server.url)
    try:
        assert await limiter.take("f", 0.01, 2) == 0.0
        server.kill()
        assert await limiter.take("f", 0.01, 2) == 0.0
        assert await limiter.take("f", 0.01, 2) == 0.0
        assert await limiter.take("f", 0.01, 2) > 0  # still limited, per node
    finally:
        await limiter.close()
        server.stop()


@pytest.fixture(params=REDIS_FLAVOURS)
def shared_url(request: pytest.FixtureRequest) -> str:
    return redis_url(request)


async def test_a_lent_share_is_spent_without_a_round_trip(shared_url: str) -> None:
    """Issue 19: a Redis round trip per send cost more than the embedded node's whole send path."""
    url = shared_url
    link = RedisLink()
    limiter = RedisRateLimiter(url, prefix=f"t{uuid.uuid4().hex[:8]}:", client=connect(url, link))
    try:
        assert await limiter.take("warm", 1.0, 2) == 0.0  # connected, script loaded (a cluster: discovered)
        link.commands = 0
        burst = 16 * LEASE_FRACTION  # lent 16 at a time
        assert [await limiter.take("s", 0.001, burst) for _ in range(48)] == [0.0] * 48
        assert link.commands == 3  # one script call per lease
    finally:
        await limiter.close()


async def test_nodes_with_leases_never_take_more_than_the_bucket(shared_url: str) -> None:
    url, prefix = shared_url, f"t{uuid.uuid4().hex[:8]}:"
    nodes = [RedisRateLimiter(url, prefix=prefix) for _ in range(3)]
    try:
        burst = 10 * LEASE_FRACTION
        taken = 0
        for _ in range(3 * burst):  # the nodes take in turn until every one is refused
            results = [await node.take("b", 0.001, burst) for node in nodes]
            taken += results.count(0.0)
        assert taken == burst
        assert all([await node.take("b", 0.001, burst) > 0 for node in nodes])
    finally:
        for node in nodes:
            await node.close()
