"""Turning a rate-limiter answer into the client-facing error."""

from __future__ import annotations

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.ratelimit.base import RateLimiter


async def enforce(limiter: RateLimiter, key: str, rate: float, burst: int) -> None:
    wait = await limiter.take(key, rate, burst)
    if wait > 0:
        raise HubbubError(Code.RATE_LIMITED, "too many requests, slow down", retry_after=round(wait, 3))
