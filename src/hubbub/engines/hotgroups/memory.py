"""In-process hot-group state."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

from hubbub.engines.hotgroups.base import HotState


class MemoryHotState(HotState):
    def __init__(self, capacity: int = 2000) -> None:
        self.capacity = capacity
        self._seqs: dict[str, list[int]] = {}
        self._items: dict[str, dict[int, bytes]] = {}
        self._floors: dict[str, int] = {}

    async def append(self, conv: str, items: Sequence[tuple[int, bytes]]) -> None:
        seqs = self._seqs.setdefault(conv, [])
        held = self._items.setdefault(conv, {})
        floor = self._floors.get(conv, 0)
        for seq, data in items:
            if seq in held or seq <= floor:
                continue
            held[seq] = data
            bisect.insort(seqs, seq)
        while len(seqs) > self.capacity:
            del held[seqs.pop(0)]

    async def replace(self, conv: str, seq: int, data: bytes) -> None:
        held = self._items.get(conv)
        if held is None or seq <= self._floors.get(conv, 0):
            return
        if seq not in held:
            bisect.insort(self._seqs[conv], seq)
        held[seq] = data
        seqs = self._seqs[conv]
        while len(seqs) > self.capacity:
            del held[seqs.pop(0)]

    async def drop_through(self, conv: str, seq: int) -> None:
        self._floors[conv] = max(seq, self._floors.get(conv, 0))
        seqs = self._seqs.get(conv, [])
        held = self._items.get(conv, {})
        while seqs and seqs[0] <= seq:
            del held[seqs.pop(0)]

    async def recent(self, conv: str, after_seq: int, limit: int) -> list[bytes] | None:
        held = self._items.get(conv)
        if not held or (after_seq + 1) not in held:
            return None
        out: list[bytes] = []
        seq = after_seq + 1
        while seq in held and len(out) < limit:
            out.append(held[seq])
            seq += 1
        return out

    async def close(self) -> None:
        self._items.clear()
        self._seqs.clear()
        self._floors.clear()
