"""``core/periodic.py``: the one periodic-task helper every background loop of a node uses (issue 13.7)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from hubbub.core.periodic import Periodic


async def test_runs_at_a_fixed_rate_and_stops_cleanly() -> None:
    starts: list[float] = []

    async def work() -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.02)  # the time a run takes comes off the next wait

    loop = Periodic("tick", 0.05, work)
    loop.start()
    loop.start()  # a second start is a no-op, not a second loop
    await asyncio.sleep(0.33)
    await loop.stop()
    assert not loop.running
    count = len(starts)
    assert 3 <= count <= 7, starts
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(0.045 <= g for g in gaps), gaps  # never early; late only under load
    await asyncio.sleep(0.12)
    assert len(starts) == count  # nothing runs after stop


async def test_a_failing_run_is_logged_and_the_next_one_comes(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def work() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("redis went away")  # expected: one warning line
        if calls == 2:
            raise ValueError("a bug")  # unexpected: logged with its traceback

    loop = Periodic("flaky", 0.02, work, quiet=(ConnectionError,))
    with caplog.at_level(logging.WARNING, logger="hubbub.core.periodic"):
        loop.start()
        while loop.runs < 3:
            await asyncio.sleep(0.01)
        await loop.stop()
    assert loop.failures == 2
    quiet, loud = caplog.records[:2]
    assert quiet.levelno == logging.WARNING and "redis went away" in quiet.getMessage() and not quiet.exc_info
    assert loud.levelno == logging.ERROR and loud.exc_info is not None


async def test_stop_cancels_a_run_in_progress() -> None:
    entered = asyncio.Event()
    finished = False

    async def work() -> None:
        nonlocal finished
        entered.set()
        await asyncio.sleep(10)
        finished = True

    loop = Periodic("slow", 0.01, work)
    loop.start()
    await asyncio.wait_for(entered.wait(), 1)
    started = time.monotonic()
    await loop.stop()
    assert time.monotonic() - started < 0.5 and not finished


def test_jitter_spreads_waits_around_the_interval() -> None:
    loop = Periodic("jittery", 1.0, _nothing, jitter=0.1)
    waits = [loop._wait(0.0) for _ in range(500)]
    assert all(0.9 <= w <= 1.1 for w in waits)
    assert max(waits) - min(waits) > 0.1  # actually spread
    assert 0.97 < sum(waits) / len(waits) < 1.03  # the mean interval is unchanged
    with pytest.raises(ValueError):
        Periodic("bad", 0, _nothing)


async def _nothing() -> None:
    return None
