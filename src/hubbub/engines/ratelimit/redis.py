"""Token buckets shared by every node of a cluster, kept in Redis and taken atomically by a Lua script.

Each bucket is a hash ``P{rl:<key>}`` of (tokens, last refill ms), expiring once it would be full again.
The script reads Redis's own clock, so nodes with skewed clocks share one notion of time.

If Redis does not answer, the limiter falls back to an in-process bucket per node rather than refusing
everyone: limits stay enforced (per node) while Redis is away.

Leases (issue 19: a round trip per send cost more node CPU than the whole embedded send path): a take that
finds no tokens lent to this node asks for up to ``burst // LEASE_FRACTION`` at once, and the next takes of the
key on this node spend them without a round trip. Tokens lent are taken from the shared bucket, so nothing
is admitted that the bucket did not grant, except that tokens a node holds while the bucket refills to full
come on top: a key taken through k nodes can exceed its burst by at most k x ``burst // LEASE_FRACTION``
(sends by default: burst 200, 25 per node). A bucket under 16 tokens is never lent from (its lease is one
token, the one taken), so small limits (logins, password changes) stay exact. Forgetting leases (memory cap)
only makes the limit stricter.
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

# KEYS[1] bucket; ARGV: rate (tokens/s), burst, most tokens wanted. Returns {tokens granted, seconds to wait as a
# string}: at least one token granted (the wait "0"), or none and the wait until one is there.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 't', 'ts')
local tokens = tonumber(state[1]) or burst
local last = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - last) * rate / 1000)
local wait = 0
local granted = 0
if tokens >= 1 then
  granted = math.min(want, math.floor(tokens))
  tokens = tokens - granted
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 't', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {granted, tostring(wait)}
"""

#: A node borrows up to this fraction of a bucket at a time (see the module docstring).
LEASE_FRACTION = 8
#: Keys with tokens lent to this node, at most; past it every lease is forgotten (safe: stricter).
_MAX_LEASES = 100_000


class RedisRateLimiter(RateLimiter):
    def __init__(self, url: str, *, prefix: str = "hubbub:", client: aioredis.Redis | None = None) -> None:
        self.prefix = prefix
        self.redis: aioredis.Redis = client or connect(url, RedisLink(), timeout=2.0)
        self._take = self.redis.register_script(_TAKE)
        self._fallback = MemoryRateLimiter()
        self._down_until = 0.0
        #: Tokens the shared buckets lent this node and it has not spent yet, per key.
        self._leases: dict[str, int] = {}

    async def take(self, key: str, rate: float, burst: int) -> float:
        if self._spend_lease(key):
            return 0.0
        if time.monotonic() < self._down_until:
            return await self._fallback.take(key, rate, burst)
        try:
            granted, wait = await self._take(
                keys=[f"{self.prefix}{{rl:{key}}}"], args=[rate, burst, max(1, burst // LEASE_FRACTION)]
            )
        except RedisError as exc:
            # Do not pay a failing round trip on every request: try Redis again in a second.
            log.warning("rate limits fall back to this node for a while (Redis: %s)", exc)
            self._down_until = time.monotonic() + 1.0
            return await self._fallback.take(key, rate, burst)
        granted = int(granted)
        if granted > 1:
            if len(self._leases) >= _MAX_LEASES and key not in self._leases:
                self._leases.clear()
            self._leases[key] = self._leases.get(key, 0) + granted - 1
        if granted >= 1 or self._spend_lease(key):  # (refused: a concurrent take's lease may have landed)
            return 0.0
        return float(wait)

    def _spend_lease(self, key: str) -> bool:
        left = self._leases.get(key, 0)
        if left <= 0:
            return False
        if left == 1:
            del self._leases[key]
        else:
            self._leases[key] = left - 1
        return True

    def local(self) -> RateLimiter:
        return self._fallback

    async def close(self) -> None:
        await self.redis.aclose()
