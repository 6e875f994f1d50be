"""Background terminals in Redis, seen by every node: a hash per user, terminal -> lapse time (ms)."""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis

from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError
from hubbub.engines.attention.base import Attention
from hubbub.engines.redis_keys import Keys


class RedisAttention(Attention):
    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    async def set_background(self, user_id: int, terminal: str, background: bool, ttl_ms: int) -> None:
        key = self.keys.background(user_id)
        try:
            if background:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hset(key, terminal, now_ms() + ttl_ms)
                    pipe.pexpire(key, ttl_ms)
                    await pipe.execute()
            else:
                await self.redis.hdel(key, terminal)
        except (aioredis.RedisError, OSError) as exc:
            raise HubbubError(Code.UNAVAILABLE, "presence is unavailable") from exc

    async def background(self, user_ids: Sequence[int], now: int) -> dict[int, set[str]]:
        if not user_ids:
            return {}
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for uid in user_ids:
                    pipe.hgetall(self.keys.background(uid))
                replies = await pipe.execute()
        except (aioredis.RedisError, OSError) as exc:
            raise HubbubError(Code.UNAVAILABLE, "presence is unavailable") from exc
        found: dict[int, set[str]] = {}
        for uid, marks in zip(user_ids, replies, strict=True):
            live = {_text(t) for t, until in marks.items() if int(until) > now}
            if live:
                found[uid] = live
        return found


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
