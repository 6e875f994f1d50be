"""In-process broker for a single node: the registry is a dict and delivery is a direct call."""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.engines.broker.base import Broker, Event, LocalSink, News, NodeLoad, Registered
from hubbub.protocol.close_codes import Close


class MemoryBroker(Broker):
    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._sink: LocalSink | None = None
        # user id -> terminal -> connection id
        self._slots: dict[int, dict[str, str]] = {}
        self._load: NodeLoad | None = None

    async def start(self, sink: LocalSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        self._slots.clear()

    async def register(self, user_id: int, terminal: str, conn_id: str) -> Registered:
        slots = self._slots.setdefault(user_id, {})
        before = tuple(sorted(slots))
        previous = slots.get(terminal)
        slots[terminal] = conn_id
        if previous is not None and previous != conn_id and self._sink is not None:
            self._sink.disconnect(user_id, Close.REPLACED, "replaced by a newer login", previous, None)
        return Registered(before=before, after=tuple(sorted(slots)))

    async def unregister(self, user_id: int, terminal: str, conn_id: str) -> Registered | None:
        slots = self._slots.get(user_id)
        if not slots or slots.get(terminal) != conn_id:
            return None
        before = tuple(sorted(slots))
        del slots[terminal]
        if not slots:
            del self._slots[user_id]
        return Registered(before=before, after=tuple(sorted(slots)))

    async def publish(self, events: Sequence[Event]) -> None:
        if self._sink is not None and events:
            self._sink.deliver(events)

    async def disconnect(
        self, user_id: int, code: Close, reason: str, *, conn_id: str | None = None, sid: str | None = None
    ) -> None:
        if self._sink is not None:
            self._sink.disconnect(user_id, code, reason, conn_id, sid)

    async def announce(self, items: Sequence[News]) -> None:
        if self._sink is not None and items:
            self._sink.news(items)

    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        return {uid: tuple(sorted(self._slots[uid])) for uid in user_ids if self._slots.get(uid)}

    async def report_load(self, load: NodeLoad) -> None:
        self._load = load

    async def nodes(self) -> list[NodeLoad]:
        return [self._load] if self._load is not None else []
