"""The registry of a single node: a dict. Every call is atomic (no await inside), so takeovers are too."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from hubbub.core.clock import now_ms
from hubbub.engines.registry.base import Holder, LocalCloser, Registered, Registry


class MemoryRegistry(Registry):
    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        # user id -> terminal -> connection id
        self._slots: dict[int, dict[str, str]] = {}
        #: (user id, terminal) -> when its connection was last active (ms), for the sessions cap.
        self._active: dict[tuple[int, str], tuple[int, int]] = {}
        self._ticks = itertools.count()  # orders activities within one millisecond

    async def start(self, closer: LocalCloser) -> None:
        pass  # entries never need renewing, so no slot is ever found taken

    async def close(self) -> None:
        self._slots.clear()
        self._active.clear()

    async def register(self, user_id: int, terminal: str, conn_id: str, *, cap: int = 0) -> Registered:
        slots = self._slots.setdefault(user_id, {})
        before = tuple(sorted(slots))
        previous = slots.get(terminal)
        slots[terminal] = conn_id
        self._active[(user_id, terminal)] = (now_ms(), next(self._ticks))
        replaced = Holder(self.node_id, previous) if previous is not None and previous != conn_id else None
        evicted = []
        while cap > 0 and len(slots) > cap:
            idlest = min(
                (t for t in slots if t != terminal), key=lambda t: self._active.get((user_id, t), (0, 0))
            )
            evicted.append(Holder(self.node_id, slots.pop(idlest)))
            self._active.pop((user_id, idlest), None)
        return Registered(
            before=before, after=tuple(sorted(slots)), replaced=replaced, evicted=tuple(evicted)
        )

    def touch(self, user_id: int, terminal: str, conn_id: str) -> None:
        if self._slots.get(user_id, {}).get(terminal) == conn_id:
            self._active[(user_id, terminal)] = (now_ms(), next(self._ticks))

    async def flush_activity(self) -> None:
        pass  # ``touch`` already wrote where ``register`` reads

    async def unregister(self, user_id: int, terminal: str, conn_id: str) -> Registered | None:
        slots = self._slots.get(user_id)
        if not slots or slots.get(terminal) != conn_id:
            return None
        before = tuple(sorted(slots))
        del slots[terminal]
        self._active.pop((user_id, terminal), None)
        if not slots:
            del self._slots[user_id]
        return Registered(before=before, after=tuple(sorted(slots)))

    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        return {uid: tuple(sorted(self._slots[uid])) for uid in user_ids if self._slots.get(uid)}

    async def locate(
        self, user_ids: Sequence[int], *, conn_id: str | None = None, stale: bool = False
    ) -> dict[int, set[str]]:
        return {
            uid: {self.node_id}
            for uid in user_ids
            if (slots := self._slots.get(uid)) and (conn_id is None or conn_id in slots.values())
        }
