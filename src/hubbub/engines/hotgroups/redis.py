"""Hot-group state in Redis: a sorted set of recent messages per group.

Nothing here is durable (see base.py), so a Redis error is never the client's problem: a failed read is a
cache miss (the database answers), a failed append is skipped.

Keys share the group's hash tag (``{g:<id>}``), so one group's keys live on one Redis Cluster slot and each
operation is a single round trip (a pipeline or a script).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub.engines.hotgroups.base import HotState

log = logging.getLogger(__name__)

# KEYS[1] recent set, KEYS[2] the purged floor; ARGV: capacity, then (seq, data) pairs. Adds only seqs not held: members are the encoded
# messages, so a plain ZADD NX of another copy of a seq (a recalled one, read from the database) would add a
# second member at the same score instead of being a no-op.
_APPEND = """
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
for i = 2, #ARGV, 2 do
  if tonumber(ARGV[i]) > floor and redis.call('ZCOUNT', KEYS[1], ARGV[i], ARGV[i]) == 0 then
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[1]) - 1)
return 0
"""

# KEYS[1] recent set, KEYS[2] the purged floor; ARGV: seq, new data, capacity. Set the member at that score, if the group has a cache.
_REPLACE = """
local floor = tonumber(redis.call('GET', KEYS[2]) or '0')
if redis.call('EXISTS', KEYS[1]) == 1 and tonumber(ARGV[1]) > floor then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -tonumber(ARGV[3]) - 1)
end
return 0
"""

# KEYS[1] recent set, KEYS[2] the purged floor; ARGV: seq. Raise the floor, drop what is at or below it. The
# floor lives as long as a cache could (a week unused), so a late append cannot revive a purged message.
_DROP = """
local floor = math.max(tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(ARGV[1]))
redis.call('SET', KEYS[2], floor, 'EX', 604800)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', floor)
return floor
"""


class RedisHotState(HotState):
    def __init__(self, client: aioredis.Redis, prefix: str = "hubbub", capacity: int = 2000) -> None:
        self.redis = client
        self.prefix = prefix
        self.capacity = capacity
        self._append: Any = client.register_script(_APPEND)
        self._replace: Any = client.register_script(_REPLACE)
        self._drop: Any = client.register_script(_DROP)

    def _key(self, conv: str, what: str) -> str:
        return f"{self.prefix}:{{{conv}}}:{what}"

    async def append(self, conv: str, items: Sequence[tuple[int, bytes]]) -> None:
        if not items:
            return
        args: list[Any] = [self.capacity]
        for seq, data in items:
            args += [seq, data]
        try:
            await self._append(keys=[self._key(conv, "recent"), self._key(conv, "floor")], args=args)
        except RedisError as exc:
            log.warning("caching hot-group messages failed: %s", exc)

    async def replace(self, conv: str, seq: int, data: bytes) -> None:
        try:
            await self._replace(
                keys=[self._key(conv, "recent"), self._key(conv, "floor")], args=[seq, data, self.capacity]
            )
        except RedisError as exc:
            log.warning("replacing a cached hot-group message failed: %s", exc)

    async def drop_through(self, conv: str, seq: int) -> None:
        # Unlike a cache write, a failure here is raised: the purge job retries it, or cached purged
        # messages would be served until they age out.
        await self._drop(keys=[self._key(conv, "recent"), self._key(conv, "floor")], args=[seq])

    async def recent(self, conv: str, after_seq: int, limit: int) -> list[bytes] | None:
        try:
            found: list[Any] = await self.redis.zrange(
                self._key(conv, "recent"),
                f"({after_seq}",
                "+inf",
                byscore=True,
                offset=0,
                num=limit,
                withscores=True,
            )
        except RedisError as exc:
            log.warning("reading the hot-group cache failed: %s", exc)
            return None
        out: list[bytes] = []
        for data, score in found:
            if int(score) != after_seq + 1 + len(out):
                break  # a hole: what follows it is not contiguous with what the caller has
            out.append(data)
        return out or None

    async def close(self) -> None:
        await self.redis.aclose()
