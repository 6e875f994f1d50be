"""Token buckets shared by every node of a cluster, kept in Redis and taken atomically by a Lua script.

Each bucket is a hash ``P{rl:<key>}`` of (tokens, last refill ms), expiring once it would be full again.
The script reads Redis's own clock, so nodes with skewed clocks share one notion of time.

If Redis does not answer, the limiter falls back to an in-process bucket per node rather than refusing
everyone: limits stay enforced (per node) while Redis is away.
"""

from __future__ import annotations

import logging
import time

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.redis_link import RedisLink, connect

log = logging.getLogger(__name__)

# KEYS[1] bucket; ARGV: rate (tokens/s), burst. Returns the seconds to wait, as a string ("0" = taken).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, *, prefix: str = "hubbub:", client: aioredis.Redis | None = None) -> None:
        self.prefix = prefix
        self.redis: aioredis.Redis = client or connect(url, RedisLink(), timeout=2.0)
        self._take = self.redis.register_script(_TAKE)
        self._fallback = MemoryRateLimiter()
        self._down_until = 0.0

    async def take(self, key: str, rate: float, burst: int) -> float:
        if time.monotonic() < self._down_until:
            return await self._fallback.take(key, rate, burst)
        try:
            wait = await self._take(keys=[f"{self.prefix}{{rl:{key}}}"], args=[rate, burst])
        except RedisError as exc:
            # Do not pay a failing round trip on every request: try Redis again in a second.
            log.warning("rate limits fall back to this node for a while (Redis: %s)", exc)
            self._down_until = time.monotonic() + 1.0
            return await self._fallback.take(key, rate, burst)
        return float(wait)

    def local(self) -> RateLimiter:
        return self._fallback

    async def close(self) -> None:
        await self.redis.aclose()
