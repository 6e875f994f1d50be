"""Background terminals in this process: the embedded (single node) engine."""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.core.clock import now_ms
from hubbub.engines.attention.base import Attention


class MemoryAttention(Attention):
    def __init__(self) -> None:
        self._marks: dict[int, dict[str, int]] = {}

    async def set_background(self, user_id: int, terminal: str, background: bool, ttl_ms: int) -> None:
        if background:
            self._marks.setdefault(user_id, {})[terminal] = now_ms() + ttl_ms
        elif (marks := self._marks.get(user_id)) is not None:
            marks.pop(terminal, None)
            if not marks:
                del self._marks[user_id]

    async def background(self, user_ids: Sequence[int], now: int) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        for uid in user_ids:
            live = {t for t, until in self._marks.get(uid, {}).items() if until > now}
            if live:
                found[uid] = live
        return found
