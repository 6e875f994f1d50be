"""A per-node cache of a yes/no answer about a pair of users, for questions the send path asks on every message.

Three things make it cheap under load, each of which the 1:1 benchmark found missing once:

- **one query per miss**: when an entry expires, every send of that pair in flight misses at once; they all
  wait for the one query already asked (single flight), instead of each asking the database;
- **jittered lifetimes**: pairs cached in the same instant do not all expire in the same instant;
- **a bound**: at ``max_size`` entries the expired ones go, and if none had, the oldest tenth: never all at
  once, which would send every active pair to the database in the same instant.

The pair is unordered: ``(a, b)`` and ``(b, a)`` are the same entry. ``forget`` drops a pair at once, which is
how a change made on this node (or announced by another one) takes effect before the entry expires.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Awaitable, Callable

#: A pair of user ids, the smaller first (how the caches key them, and how ``Forget`` names them).
Pair = tuple[int, int]


def pair(a: int, b: int) -> Pair:
    return (a, b) if a < b else (b, a)


class PairCache:
    __slots__ = ("_answers", "_asking", "_forgets", "_load", "cache_false", "max_size", "ttl_s")

    def __init__(
        self,
        load: Callable[[int, int], Awaitable[bool]],
        ttl_s: float,
        *,
        cache_false: bool = True,
        max_size: int = 200_000,
    ) -> None:
        self._load = load
        self.ttl_s = ttl_s
        #: Whether a "no" is cached too (a "no" that may turn into "yes" elsewhere might not be).
        self.cache_false = cache_false
        self.max_size = max_size
        self._answers: dict[Pair, tuple[bool, float]] = {}
        self._asking: dict[Pair, asyncio.Future[bool]] = {}
        #: Counts ``forget`` calls: an answer whose query saw one go by may predate that change, and is not kept.
        self._forgets = 0

    async def get(self, a: int, b: int) -> bool:
        key = pair(a, b)
        cached = self._answers.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        flight = self._asking.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._ask(key, self._forgets))
            self._asking[key] = flight
            flight.add_done_callback(lambda f: self._asking.pop(key) if self._asking.get(key) is f else None)
        return await asyncio.shield(flight)

    def forget(self, a: int, b: int) -> None:
        key = pair(a, b)
        self._answers.pop(key, None)
        self._asking.pop(key, None)  # later askers ask again
        self._forgets += 1

    async def _ask(self, key: Pair, forgets: int) -> bool:
        answer = await self._load(*key)
        if forgets != self._forgets:
            return answer
        if answer or self.cache_false:
            now = time.monotonic()
            self._answers.pop(key, None)  # re-inserted: the dict's order stays the order of age
            if len(self._answers) >= self.max_size:
                self._make_room(now)
            self._answers[key] = (answer, now + self.ttl_s * random.uniform(0.7, 1.3))
        return answer

    def _make_room(self, now: float) -> None:
        answers = self._answers
        for key in [k for k, (_, until) in answers.items() if until <= now]:
            del answers[key]
        if len(answers) >= self.max_size:
            for key in list(itertools.islice(answers, max(1, self.max_size // 10))):
                del answers[key]
