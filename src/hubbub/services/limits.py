"""Turning a rate-limiter answer into the client-facing error."""

from __future__ import annotations

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.engines.ratelimit.base import RateLimiter


async def enforce(limiter: RateLimiter, key: str, rate: float, burst: int) -> None:
    wait = await limiter.take(key, rate, burst)
    if wait > 0:
        raise HubbubError(Code.RATE_LIMITED, "too many requests, slow down", retry_after=round(wait, 3))


async def enforce_reads(limiter: RateLimiter, config: Config, user_id: int) -> None:
    """Reads per user: REST ``GET``s and the WebSocket's ``sync``, ``pull``, ``history`` and ``receipts`` take
    from one bucket, so a client polling in a loop is slowed down whichever way it asks, while a person
    scrolling or a client syncing on reconnect never notices (docs/security.md, "Abuse limits").

    The bucket is per node (``limiter.local()``): a read is served by the node it reaches, so the node's
    own bucket bounds the load a user puts on it, and a hot-group pull (one per signal per member) does not
    pay a Redis round trip for its check."""
    await enforce(limiter.local(), f"read:{user_id}", config.read_rate, config.read_burst)
