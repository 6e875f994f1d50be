"""Calls in Redis, for a cluster: every node sees the same calls and the same busy marks.

Keys (``P`` is the prefix; every key has the ``{calls}`` hash tag, so the scripts touching several of them run
on Redis Cluster too. Calls are few and short, one slot holds them all):

- ``P{calls}:c:<id>`` — hash ``v`` (version), ``d`` (the call's bytes), ``p`` ("caller,callee"); PEXPIRE ttl.
- ``P{calls}:u:<user>`` — string, the id of the call the user is in; PEXPIRE ttl, deleted with the call.
- ``P{calls}:due`` — sorted set, call id by deadline (ms), read by every node's sweeper.

Both writes are Lua scripts, so the busy check and the marks (``create``), or the version check and the
write (``save``), are one atomic step whichever nodes race.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from hubbub.engines.calls.base import CallStore

# KEYS: call, caller mark, callee mark, due. ARGV: id, data, parties, due, ttl ms.
# Returns 0 when created, else the index (1 or 2) of the busy party.
_CREATE = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
if redis.call('EXISTS', KEYS[3]) == 1 then return 2 end
redis.call('HSET', KEYS[1], 'v', 1, 'd', ARGV[2], 'p', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[5])
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[4], ARGV[1])
return 0
"""

# KEYS: call, caller mark, callee mark, due. ARGV: id, data, expected version, ended (0/1), due, ttl ms.
# Returns 1 when written.
_SAVE = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v or v ~= ARGV[3] then return 0 end
if ARGV[4] == '1' then
  redis.call('DEL', KEYS[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
  for i = 2, 3 do
    if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('DEL', KEYS[i]) end
  end
  return 1
end
redis.call('HSET', KEYS[1], 'v', tonumber(v) + 1, 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
for i = 2, 3 do
  if redis.call('GET', KEYS[i]) == ARGV[1] then redis.call('PEXPIRE', KEYS[i], ARGV[6]) end
end
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
return 1
"""

# KEYS: due. ARGV: now, limit. Drops ids whose call expired (nothing left to tick), returns the rest.
_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local live = {}
for _, id in ipairs(ids) do
  if redis.call('EXISTS', ARGV[3] .. id) == 1 then table.insert(live, id)
  else redis.call('ZREM', KEYS[1], id) end
end
return live
"""


class RedisCallStore(CallStore):
    def __init__(self, client: aioredis.Redis, *, prefix: str = "hubbub:") -> None:
        self.redis = client
        self.prefix = prefix
        self._create = client.register_script(_CREATE)
        self._save = client.register_script(_SAVE)
        self._due = client.register_script(_DUE)

    def _call_key(self, call_id: str) -> str:
        return f"{self.prefix}{{calls}}:c:{call_id}"

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}{{calls}}:u:{user_id}"

    def _due_key(self) -> str:
        return f"{self.prefix}{{calls}}:due"

    def _keys(self, call_id: str, parties: tuple[int, int]) -> list[str]:
        return [
            self._call_key(call_id),
            self._user_key(parties[0]),
            self._user_key(parties[1]),
            self._due_key(),
        ]

    async def create(
        self, call_id: str, parties: tuple[int, int], data: bytes, due: int, ttl_ms: int
    ) -> int | None:
        busy = int(
            await self._create(
                keys=self._keys(call_id, parties),
                args=[call_id, data, f"{parties[0]},{parties[1]}", due, max(1, ttl_ms)],
            )
        )
        return None if busy == 0 else parties[busy - 1]

    async def get(self, call_id: str) -> tuple[int, bytes] | None:
        version, data = await self.redis.hmget(self._call_key(call_id), ["v", "d"])
        if version is None or data is None:
            return None
        return int(version), data if isinstance(data, bytes) else data.encode()

    async def save(
        self,
        call_id: str,
        parties: tuple[int, int],
        data: bytes,
        expected: int,
        *,
        ended: bool,
        due: int,
        ttl_ms: int,
    ) -> bool:
        written = await self._save(
            keys=self._keys(call_id, parties),
            args=[call_id, data, expected, 1 if ended else 0, due, max(1, ttl_ms)],
        )
        return int(written) == 1

    async def of_user(self, user_id: int) -> str | None:
        found = await self.redis.get(self._user_key(user_id))
        return found.decode() if isinstance(found, bytes) else found

    async def due(self, now: int, limit: int = 100) -> list[str]:
        ids = await self._due(keys=[self._due_key()], args=[now, limit, f"{self.prefix}{{calls}}:c:"])
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    async def close(self) -> None:
        await self.redis.aclose()
