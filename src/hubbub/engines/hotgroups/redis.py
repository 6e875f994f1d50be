"""Hot-group state in Redis: a sorted set of recent messages and a hash of offsets per group.

Nothing here is durable (see base.py), so a Redis error is never the client's problem: a failed read is a
cache miss (the database answers), a failed offset update signals everyone, a failed append is skipped.

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

# KEYS[1] offsets hash; ARGV: ttl, then (user, seq) pairs. Raise each to max(old, new); return the old values.
_RAISE = """
local before = {}
for i = 2, #ARGV, 2 do
  local old = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0')
  before[#before + 1] = old
  if tonumber(ARGV[i + 1]) > old then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return before
"""

# KEYS[1] recent set; ARGV: seq, new data. Swap the member at that score, only if there is one.
_REPLACE = """
if redis.call('ZCOUNT', KEYS[1], ARGV[1], ARGV[1]) > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
end
return 0
"""

#: Offsets of a group nobody signals for a day are dropped; they are rebuilt as members come back.
_OFFSETS_TTL_S = 24 * 3600


class RedisHotState(HotState):
    def __init__(self, client: aioredis.Redis, prefix: str = "hubbub", capacity: int = 2000) -> None:
        self.redis = client
        self.prefix = prefix
        self.capacity = capacity
        self._raise: Any = client.register_script(_RAISE)
        self._replace: Any = client.register_script(_REPLACE)

    def _key(self, conv: str, what: str) -> str:
        return f"{self.prefix}:{{{conv}}}:{what}"

    async def append(self, conv: str, items: Sequence[tuple[int, bytes]]) -> None:
        if not items:
            return
        key = self._key(conv, "recent")
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zadd(key, {data: seq for seq, data in items}, nx=True)
                pipe.zremrangebyrank(key, 0, -self.capacity - 1)
                await pipe.execute()
        except RedisError as exc:
            log.warning("caching hot-group messages failed: %s", exc)

    async def replace(self, conv: str, seq: int, data: bytes) -> None:
        try:
            await self._replace(keys=[self._key(conv, "recent")], args=[seq, data])
        except RedisError as exc:
            log.warning("replacing a cached hot-group message failed: %s", exc)

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

    async def raise_offsets(self, conv: str, offsets: dict[int, int]) -> dict[int, int]:
        if not offsets:
            return {}
        key = self._key(conv, "offsets")
        users = list(offsets)
        args: list[Any] = [_OFFSETS_TTL_S]
        for uid in users:
            args += [uid, offsets[uid]]
        try:
            before = await self._raise(keys=[key], args=args)
        except RedisError as exc:
            log.warning("raising hot-group offsets failed: %s", exc)
            return dict.fromkeys(users, 0)
        return {uid: int(old) for uid, old in zip(users, before, strict=True)}

    async def close(self) -> None:
        await self.redis.aclose()
