"""The call store contract (engines/calls/base.py), against the in-process and the Redis store."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from hubbub.engines.calls.base import CallStore
from hubbub.engines.calls.memory import MemoryCallStore
from hubbub.engines.calls.redis import RedisCallStore
from hubbub.engines.redis_link import RedisLink, connect
from tests.contract.conftest import REDIS_FLAVOURS, redis_url


@pytest.fixture(params=["memory", *REDIS_FLAVOURS])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[CallStore]:
    if request.param == "memory":
        yield MemoryCallStore()
        return
    redis_store = RedisCallStore(connect(redis_url(request), RedisLink()), prefix=f"t{uuid.uuid4().hex[:8]}:")
    yield redis_store
    await redis_store.close()


async def test_create_marks_both_parties_busy(store: CallStore) -> None:
    assert await store.create("c1", (1, 2), b"one", due=100, ttl_ms=60_000) is None
    assert await store.get("c1") == (1, b"one")
    assert (await store.of_user(1), await store.of_user(2), await store.of_user(3)) == ("c1", "c1", None)
    assert await store.create("c2", (3, 2), b"two", due=100, ttl_ms=60_000) == 2
    assert await store.create("c3", (1, 4), b"three", due=100, ttl_ms=60_000) == 1
    assert await store.get("c2") is None and await store.of_user(3) is None and await store.of_user(4) is None


async def test_racing_invites_for_one_user_one_wins(store: CallStore) -> None:
    results = await asyncio.gather(
        *(store.create(f"r{i}", (10 + i, 99), b"x", 100, 60_000) for i in range(8))
    )
    assert results.count(None) == 1 and all(r == 99 for r in results if r is not None)


async def test_save_is_compare_and_set_and_ending_frees_both(store: CallStore) -> None:
    await store.create("c1", (1, 2), b"v1", due=100, ttl_ms=60_000)
    assert await store.save("c1", (1, 2), b"v2", 1, ended=False, due=200, ttl_ms=60_000)
    assert not await store.save("c1", (1, 2), b"stale", 1, ended=False, due=200, ttl_ms=60_000)
    assert await store.get("c1") == (2, b"v2")
    assert await store.due(150) == [] and await store.due(200) == ["c1"]
    assert await store.save("c1", (1, 2), b"end", 2, ended=True, due=0, ttl_ms=1)
    assert await store.get("c1") is None and await store.due(10**15) == []
    assert await store.of_user(1) is None and await store.of_user(2) is None
    assert not await store.save("c1", (1, 2), b"again", 3, ended=False, due=0, ttl_ms=1000)


async def test_everything_expires(store: CallStore) -> None:
    await store.create("c1", (1, 2), b"x", due=int(time.time() * 1000), ttl_ms=150)
    await asyncio.sleep(0.3)
    assert await store.get("c1") is None and await store.of_user(1) is None and await store.of_user(2) is None
    assert await store.due(10**15) == []
    assert await store.create("c2", (1, 2), b"y", due=0, ttl_ms=60_000) is None  # free again
