"""PairCache (services/pair_cache.py): the per-node answers the send path asks about every private message."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.services import pair_cache
from hubbub.services.pair_cache import PairCache


class Asked:
    """A loader that counts its queries and answers only when told to."""

    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.calls: list[tuple[int, int]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, a: int, b: int) -> bool:
        self.calls.append((a, b))
        await self.gate.wait()
        return self.answer


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(pair_cache, "time", fake)
    return fake


async def test_a_pair_is_one_entry_whichever_way_round(clock: Clock) -> None:
    load = Asked()
    cache = PairCache(load, ttl_s=10)
    assert await cache.get(2, 1) and await cache.get(1, 2)
    assert load.calls == [(1, 2)]


async def test_every_miss_in_flight_waits_for_one_query(clock: Clock) -> None:
    load = Asked()
    load.gate.clear()
    cache = PairCache(load, ttl_s=10)
    waiting = [asyncio.ensure_future(cache.get(1, 2)) for _ in range(50)]
    await asyncio.sleep(0)
    load.gate.set()
    assert all(await asyncio.gather(*waiting))
    assert load.calls == [(1, 2)]


async def test_answers_expire_within_the_jittered_lifetime(clock: Clock) -> None:
    load = Asked()
    cache = PairCache(load, ttl_s=10)
    await cache.get(1, 2)
    clock.now += 6.9  # under 0.7 x ttl: still cached
    await cache.get(1, 2)
    assert len(load.calls) == 1
    clock.now += 6.2  # past 1.3 x ttl: asked again
    await cache.get(1, 2)
    assert len(load.calls) == 2


async def test_a_no_is_asked_again_unless_noes_are_cached(clock: Clock) -> None:
    load = Asked(answer=False)
    yes_only = PairCache(load, ttl_s=10, cache_false=False)
    assert not await yes_only.get(1, 2) and not await yes_only.get(1, 2)
    assert len(load.calls) == 2
    both = PairCache(load, ttl_s=10)
    assert not await both.get(3, 4) and not await both.get(3, 4)
    assert len(load.calls) == 3


async def test_forget_drops_the_answer_and_the_one_in_flight(clock: Clock) -> None:
    """A change (a block, a removed friend) forgets the pair: the next ask queries again, an asker after the
    change does not join the query that was out during it, and that query's answer is not kept."""
    load = Asked(answer=False)
    cache = PairCache(load, ttl_s=10)
    assert not await cache.get(1, 2)
    cache.forget(2, 1)
    load.gate.clear()
    old = asyncio.ensure_future(cache.get(1, 2))
    await asyncio.sleep(0)
    load.answer = True
    cache.forget(1, 2)  # the change lands while that query is out
    later = asyncio.ensure_future(cache.get(1, 2))
    for _ in range(3):  # the asker's task, then its query's
        await asyncio.sleep(0)
    assert len(load.calls) == 3  # the later asker asked again rather than wait for the stale query
    load.gate.set()
    await old
    assert await later
    await cache.get(1, 2)
    assert len(load.calls) == 3  # the later answer is kept; the stale one was not


async def test_past_its_bound_expired_answers_go_first_then_the_oldest(clock: Clock) -> None:
    load = Asked()
    cache = PairCache(load, ttl_s=10, max_size=3)
    await cache.get(1, 2)
    clock.now += 20  # (1, 2) has expired
    await cache.get(1, 3)
    await cache.get(1, 4)
    await cache.get(1, 5)  # full: the expired (1, 2) makes room, the others stay
    assert len(load.calls) == 4
    for b in (3, 4, 5):
        await cache.get(1, b)
    assert len(load.calls) == 4
    await cache.get(1, 6)  # full of live answers: the oldest, (1, 3), goes; the rest stay
    await cache.get(1, 4)
    await cache.get(1, 5)
    assert len(load.calls) == 5
    await cache.get(1, 3)
    assert len(load.calls) == 6
