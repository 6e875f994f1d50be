"""This node's live connections, and delivery of routed events to them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from hubbub.core.periodic import Periodic
from hubbub.engines.routing.base import Event
from hubbub.gateway.connection import Connection, Outbox, WireStats
from hubbub.gateway.wire import text_frame
from hubbub.proof.trace import NO_TRACE, Tracer
from hubbub.protocol.close_codes import Close
from hubbub.protocol.session import State


class Hub:
    """Implements routing's ``LocalSink`` (routing hands it events, it writes them to sockets) and the
    registry's ``LocalCloser``."""

    def __init__(self, heartbeat_s: float, auth_timeout_s: float) -> None:
        self.by_id: dict[str, Connection] = {}
        #: Authenticated connections: these get pushes.
        self.by_user: dict[int, list[Connection]] = {}
        #: Connections whose token checked out and that are registering: no pushes yet, but a takeover
        #: (4409), a revocation or a ban must reach them all the same (docs/protocol.md, "Connections").
        self.joining: dict[int, list[Connection]] = {}
        self.heartbeat_s = heartbeat_s
        self.auth_timeout_s = auth_timeout_s
        self._sweeper = Periodic("hub-sweeper", min(1.0, heartbeat_s / 5), self._sweep)
        self.stats = WireStats()
        #: Coalesces each connection's frames of one loop pass into one write (gateway/connection.py).
        self.outbox = Outbox()
        #: Set by the composition root: receives node broadcasts (hot-group news, cache drops).
        self.on_broadcast: Callable[[bytes], None] | None = None
        #: Set by the node: per-message tracing (proof/trace.py).
        self.tracer: Tracer = NO_TRACE

    # -- membership -------------------------------------------------------------------------------
    def add(self, conn: Connection) -> None:
        self.by_id[conn.conn_id] = conn

    def claim(self, conn: Connection) -> None:
        """The connection's user is known and it is about to register: closes aimed at the user reach it."""
        self.joining.setdefault(conn.user_id, []).append(conn)

    def bind(self, conn: Connection) -> None:
        """The connection is authenticated: make it reachable by its user id."""
        _drop(self.joining, conn)
        self.by_user.setdefault(conn.user_id, []).append(conn)

    def remove(self, conn: Connection) -> None:
        self.by_id.pop(conn.conn_id, None)
        _drop(self.joining, conn)
        _drop(self.by_user, conn)

    # -- LocalSink --------------------------------------------------------------------------------
    def deliver(self, events: Sequence[Event]) -> None:
        by_user = self.by_user
        if self.tracer.on:
            self.tracer.delivered(events, by_user)
        for event in events:
            frame: bytes | None = None
            for uid in event.recipients:
                conns = by_user.get(uid)
                if not conns:
                    continue
                if frame is None:
                    frame = text_frame(event.payload)
                only = event.only_conn
                for conn in conns:
                    if conn.conn_id != event.exclude_conn and (only is None or conn.conn_id == only):
                        conn.write(frame)

    def broadcast(self, payload: bytes) -> None:
        if self.on_broadcast is not None:
            self.on_broadcast(payload)

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        """Close the user's connections here, authenticated or still registering. A takeover names the
        replaced connection, which may not have finished its own registration yet (two logins of one
        terminal at once): it is looked up by id, whatever its state, so exactly one of them survives."""
        if conn_id is not None:
            found = self.by_id.get(conn_id)
            candidates = [found] if found is not None and found.user_id == user_id else []
        else:
            candidates = [*self.by_user.get(user_id, ()), *self.joining.get(user_id, ())]
        for conn in candidates:
            if sid is None or conn.sid == sid:
                conn.close(code, reason)

    # -- timeouts ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the sweeper (a node that serves WebSocket connections; the composition root decides)."""
        self._sweeper.start()

    async def _sweep(self) -> None:
        """One task for all connections (not a timer each): close the silent and the unauthenticated."""
        silent_after = self.heartbeat_s * 2.5
        now = time.monotonic()
        for conn in list(self.by_id.values()):
            if conn.closing:
                continue
            # Only a client that has not *sent* auth in time: one whose auth the server is still checking
            # (a slow database after a failover) must not get a terminal 4401 for the server's slowness.
            awaiting = conn.session.state is State.AWAITING_AUTH
            if awaiting and now - conn.connected_at > self.auth_timeout_s:
                conn.close(Close.UNAUTHORIZED, "authentication timed out")
            elif now - conn.last_seen > silent_after:
                conn.close(Close.HEARTBEAT_TIMEOUT, "no heartbeat")

    @property
    def sweeping(self) -> bool:
        return self._sweeper.running

    async def close_all(self, code: Close, reason: str) -> None:
        await self._sweeper.stop()
        conns = list(self.by_id.values())
        for conn in conns:
            conn.close(code, reason)
        await asyncio.sleep(0)


def _drop(index: dict[int, list[Connection]], conn: Connection) -> None:
    conns = index.get(conn.user_id)
    if conns and conn in conns:
        conns.remove(conn)
        if not conns:
            del index[conn.user_id]
