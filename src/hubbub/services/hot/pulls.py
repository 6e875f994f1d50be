"""Serving pulls of hot groups from the recent-message cache (``HotState``), then the database.

Members signalled in the same window pull the same range at the same moment, so one read — of the cache or,
for a range it does not hold, of the database — serves them all: a single flight per (group, range), then a
memo of ``MEMO_S``. The memo of a group is dropped by every news of it, so it never hides a newer message.
Who may pull is decided before any of this, by the caller (``HotGroups.pull``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.storage.base import Storage
from hubbub.protocol.frames import encode

#: Pull results are memoized this long (seconds): members signalled together pull the same range.
MEMO_S = 1.0
_MEMO_MAX = 4096


class Pulls:
    def __init__(self, storage: Storage, state: HotState, clock: Callable[[], float]) -> None:
        self.storage = storage
        self.state = state
        self.clock = clock
        #: The newest seq this node has heard of per hot group (from news).
        self.latest: dict[str, int] = {}
        # conv -> (after_seq, limit) -> (expiry, encoded messages): per group, so news drops only its own.
        self._memo: dict[str, dict[tuple[int, int], tuple[float, list[bytes]]]] = {}
        self._inflight: dict[tuple[str, int, int], asyncio.Future[list[bytes]]] = {}
        #: Counters for metrics and benchmarks.
        self.cache_hits = 0
        self.cache_misses = 0

    def advance(self, conv: str, seq: int) -> None:
        """News up to ``seq``: remember the newest seq, and memoized pulls of the group are stale."""
        if seq > self.latest.get(conv, 0):
            self.latest[conv] = seq
        self.refresh(conv)

    def refresh(self, conv: str) -> None:
        """The group's messages changed (new ones, a recall): its memoized pull results are stale."""
        self._memo.pop(conv, None)

    async def serve(self, conv: str, after_seq: int, limit: int) -> tuple[list[bytes], bool]:
        """Encoded messages after ``after_seq`` (at most ``limit``) and whether there are more."""
        key = (conv, after_seq, limit)
        memo = self._memo.get(conv, {}).get((after_seq, limit))
        if memo is not None and memo[0] > self.clock():
            found = memo[1]
        else:
            flight = self._inflight.get(key)
            if flight is None:
                flight = asyncio.ensure_future(self._load(key))
                self._inflight[key] = flight
                flight.add_done_callback(lambda _f: self._inflight.pop(key, None))
            found = await asyncio.shield(flight)
        return found[:limit], len(found) > limit

    async def _load(self, key: tuple[str, int, int]) -> list[bytes]:
        conv, after_seq, limit = key
        found = await self.state.recent(conv, after_seq, limit + 1)
        # The cache may stop short of what exists (a hole, or messages it never got): serve it only when it
        # holds more than asked for, or when this node has heard of nothing newer than what it returned.
        if found is not None and (len(found) > limit or after_seq + len(found) >= self.latest.get(conv, 0)):
            self.cache_hits += 1
        else:
            self.cache_misses += 1
            messages = await self.storage.messages_after(conv, after_seq, limit + 1)
            found = [encode(m) for m in messages]
            await self.state.append(conv, [(m.seq, data) for m, data in zip(messages, found, strict=True)])
        memo = self._memo.setdefault(conv, {})
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[(after_seq, limit)] = (self.clock() + MEMO_S, found)
        return found
