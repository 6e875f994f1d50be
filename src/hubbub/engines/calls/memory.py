"""Calls in this process's memory, for a single node. Same contract as the Redis store, expiry included."""

from __future__ import annotations

import time
from dataclasses import dataclass

from hubbub.engines.calls.base import CallStore


@dataclass
class _Entry:
    parties: tuple[int, int]
    version: int
    data: bytes
    due: int
    expires: float  # monotonic seconds


class MemoryCallStore(CallStore):
    def __init__(self) -> None:
        self._calls: dict[str, _Entry] = {}
        self._users: dict[int, str] = {}

    def _expire(self) -> None:
        now = time.monotonic()
        for call_id, entry in list(self._calls.items()):
            if entry.expires <= now:
                self._drop(call_id, entry.parties)

    def _drop(self, call_id: str, parties: tuple[int, int]) -> None:
        self._calls.pop(call_id, None)
        for user in parties:
            if self._users.get(user) == call_id:
                del self._users[user]

    async def create(
        self, call_id: str, parties: tuple[int, int], data: bytes, due: int, ttl_ms: int
    ) -> int | None:
        self._expire()
        for user in parties:
            if user in self._users:
                return user
        self._calls[call_id] = _Entry(parties, 1, data, due, time.monotonic() + ttl_ms / 1000)
        for user in parties:
            self._users[user] = call_id
        return None

    async def get(self, call_id: str) -> tuple[int, bytes] | None:
        self._expire()
        entry = self._calls.get(call_id)
        return (entry.version, entry.data) if entry is not None else None

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
        self._expire()
        entry = self._calls.get(call_id)
        if entry is None or entry.version != expected:
            return False
        if ended:
            self._drop(call_id, entry.parties)
        else:
            self._calls[call_id] = _Entry(
                entry.parties, expected + 1, data, due, time.monotonic() + ttl_ms / 1000
            )
        return True

    async def of_user(self, user_id: int) -> str | None:
        self._expire()
        return self._users.get(user_id)

    async def due(self, now: int, limit: int = 100) -> list[str]:
        self._expire()
        return [call_id for call_id, entry in self._calls.items() if entry.due <= now][:limit]
