"""The hot-group state contract (engines/hotgroups/base.py), against the in-process and the Redis engine."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.hotgroups.redis import RedisHotState
from hubbub.engines.redis_link import RedisLink, connect
from tests.contract.conftest import REDIS_FLAVOURS, redis_url


@pytest.fixture(params=["memory", *REDIS_FLAVOURS])
async def state(request: pytest.FixtureRequest) -> AsyncIterator[HotState]:
    if request.param == "memory":
        yield MemoryHotState(capacity=5)
        return
    client = connect(redis_url(request), RedisLink())
    # Each test its own key prefix, so tests never see each other's keys.
    yield RedisHotState(client, prefix=f"t{uuid.uuid4().hex[:8]}", capacity=5)
    await client.aclose()


def msg(seq: int) -> tuple[int, bytes]:
    return seq, b'{"seq":%d}' % seq


async def test_recent_serves_only_ranges_it_fully_holds(state: HotState) -> None:
    await state.append("g:1", [msg(s) for s in range(1, 5)])
    assert await state.recent("g:1", 0, 10) == [msg(s)[1] for s in range(1, 5)]
    assert await state.recent("g:1", 2, 1) == [msg(3)[1]]
    assert await state.recent("g:1", 4, 10) is None  # nothing newer is held: ask the database
    assert await state.recent("g:2", 0, 10) is None


async def test_capacity_keeps_the_newest(state: HotState) -> None:
    await state.append("g:1", [msg(s) for s in range(1, 9)])
    assert await state.recent("g:1", 0, 10) is None  # seq 1 was evicted
    assert await state.recent("g:1", 3, 10) == [msg(s)[1] for s in range(4, 9)]


async def test_append_is_idempotent(state: HotState) -> None:
    await state.append("g:1", [msg(1), msg(2)])
    await state.append("g:1", [msg(2), msg(3)])
    assert await state.recent("g:1", 0, 10) == [msg(1)[1], msg(2)[1], msg(3)[1]]


async def test_append_keeps_the_copy_it_holds(state: HotState) -> None:
    """Another copy of a held seq (a recalled message read back from the database) is not a second entry."""
    await state.append("g:1", [msg(1), msg(2)])
    await state.append("g:1", [(2, b'{"seq":2,"other":1}'), msg(3)])
    assert await state.recent("g:1", 0, 10) == [msg(1)[1], msg(2)[1], msg(3)[1]]


async def test_replace_sets_the_copy_in_a_groups_cache(state: HotState) -> None:
    await state.append("g:1", [msg(1), msg(2)])
    await state.replace("g:1", 2, b'{"seq":2,"recalled":true}')
    assert await state.recent("g:1", 0, 10) == [msg(1)[1], b'{"seq":2,"recalled":true}']
    # Not held yet (a pull may be reading the old copy from the database): set, so that copy cannot follow.
    await state.replace("g:1", 3, b'{"seq":3,"recalled":true}')
    await state.append("g:1", [msg(3)])
    assert (await state.recent("g:1", 2, 10) or [])[0] == b'{"seq":3,"recalled":true}'
    await state.replace("g:9", 1, b"{}")  # a group with no cache gets none
    assert await state.recent("g:9", 0, 10) is None


async def test_recent_stops_at_a_hole(state: HotState) -> None:
    await state.append("g:3", [msg(1), msg(2), msg(5), msg(6)])
    assert await state.recent("g:3", 0, 10) == [msg(1)[1], msg(2)[1]]
    assert await state.recent("g:3", 4, 10) == [msg(5)[1], msg(6)[1]]
    assert await state.recent("g:3", 2, 10) is None
