"""In-process token buckets."""

from __future__ import annotations

import time

from hubbub.engines.ratelimit.base import RateLimiter

_MAX_KEYS = 100_000


class MemoryRateLimiter(RateLimiter):
    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, last refill time)

    async def take(self, key: str, rate: float, burst: int) -> float:
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(burst), now))
        tokens = min(float(burst), tokens + (now - last) * rate)
        if tokens >= 1.0:
            self._set(key, tokens - 1.0, now)
            return 0.0
        self._set(key, tokens, now)
        return (1.0 - tokens) / rate

    def _set(self, key: str, tokens: float, now: float) -> None:
        if len(self._buckets) >= _MAX_KEYS and key not in self._buckets:
            self._buckets.clear()  # every forgotten bucket was refilling towards full; forgetting is safe
        self._buckets[key] = (tokens, now)
