"""Routing inside one process: every connection is local, so delivery is a direct call to the hub."""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.engines.routing.base import Event, LocalSink, Routing
from hubbub.protocol.close_codes import Close


class MemoryRouting(Routing):
    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._sink: LocalSink | None = None

    async def start(self, sink: LocalSink) -> None:
        self._sink = sink

    async def close(self) -> None:
        pass  # nothing held; what is published while the node stops still reaches its hub

    async def publish(self, events: Sequence[Event]) -> None:
        if self._sink is not None and events:
            self._sink.deliver(events)

    async def disconnect(
        self,
        user_id: int,
        code: Close,
        reason: str,
        *,
        conn_id: str | None = None,
        sid: str | None = None,
        node: str | None = None,
    ) -> None:
        if self._sink is not None:
            self._sink.disconnect(user_id, code, reason, conn_id, sid)

    async def broadcast(self, payload: bytes) -> None:
        if self._sink is not None:
            self._sink.broadcast(payload)
