"""The attention contract (engines/attention/base.py): which terminals are in the background, against the
in-process engine and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from hubbub.core.clock import now_ms
from hubbub.engines.attention.base import Attention
from hubbub.engines.attention.memory import MemoryAttention
from hubbub.engines.attention.redis import RedisAttention
from hubbub.engines.redis_keys import Keys
from tests import servers


@pytest.fixture(params=["memory", "redis"])
async def attention(request: pytest.FixtureRequest) -> AsyncIterator[Attention]:
    if request.param == "memory":
        yield MemoryAttention()
        return
    server: servers.RedisServer = request.getfixturevalue("redis_server")
    client = aioredis.Redis.from_url(server.url)
    yield RedisAttention(client, Keys(f"t{uuid.uuid4().hex[:8]}:"))
    await client.aclose()


async def test_marks_are_per_terminal_and_removed_at_once(attention: Attention) -> None:
    assert await attention.background([1, 2], now_ms()) == {}
    await attention.set_background(1, "web", True, 60_000)
    await attention.set_background(1, "mobile", True, 60_000)
    await attention.set_background(2, "web", True, 60_000)
    assert await attention.background([1, 2, 3], now_ms()) == {1: {"web", "mobile"}, 2: {"web"}}
    await attention.set_background(1, "web", False, 0)
    await attention.set_background(3, "web", False, 0)  # never marked: nothing happens
    assert await attention.background([1, 2, 3], now_ms()) == {1: {"mobile"}, 2: {"web"}}


async def test_a_mark_not_renewed_lapses(attention: Attention) -> None:
    await attention.set_background(1, "web", True, 1_000)
    assert await attention.background([1], now_ms() + 500) == {1: {"web"}}
    assert await attention.background([1], now_ms() + 1_001) == {}
    await attention.set_background(1, "web", True, 5_000)  # renewed by the gateway's heartbeat
    assert await attention.background([1], now_ms() + 1_001) == {1: {"web"}}
