"""Alarm (core/alarm.py): how the webhook dispatcher and the Web Push sender sleep between rounds."""

from __future__ import annotations

import asyncio
import time

from hubbub.core.alarm import Alarm, Woke


def ms() -> int:
    return int(time.monotonic() * 1000)


async def test_a_ring_wakes_at_once_even_if_it_came_before_the_wait() -> None:
    alarm = Alarm(poll_s=10, clock_ms=ms)
    alarm.ring()
    assert await asyncio.wait_for(alarm.wait(), 1) is Woke.RUNG
    waiting = asyncio.ensure_future(alarm.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()  # the ring was used up
    alarm.ring()
    assert await asyncio.wait_for(waiting, 1) is Woke.RUNG


async def test_a_time_set_while_asleep_shortens_the_sleep_without_waking_early() -> None:
    alarm = Alarm(poll_s=10, clock_ms=ms)
    waiting = asyncio.ensure_future(alarm.wait())
    await asyncio.sleep(0.01)
    started = ms()
    alarm.at(started + 100)
    await asyncio.sleep(0.05)
    assert not waiting.done()  # not before its time
    assert await asyncio.wait_for(waiting, 1) is Woke.DUE
    assert ms() >= started + 100
    assert alarm.due_ms is None  # used up: the next wait is the poll's


async def test_the_earliest_time_wins_and_the_poll_is_the_net() -> None:
    alarm = Alarm(poll_s=0.05, clock_ms=ms)
    alarm.at(ms() + 60_000)
    alarm.at(ms() + 20)
    alarm.at(ms() + 30_000)
    assert await asyncio.wait_for(alarm.wait(), 1) is Woke.DUE
    assert await asyncio.wait_for(alarm.wait(), 1) is Woke.POLL
