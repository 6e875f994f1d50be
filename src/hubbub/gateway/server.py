"""The WebSocket endpoint: accept, authenticate, then read frames until the connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time

from aiohttp import WSMsgType, web

from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError
from hubbub.gateway.connection import Connection
from hubbub.gateway.handlers import Handlers, error_frame
from hubbub.gateway.hub import Hub
from hubbub.metrics import NodeMetrics
from hubbub.protocol import frames
from hubbub.protocol.close_codes import Close
from hubbub.protocol.frames import encode
from hubbub.protocol.session import Rejection
from hubbub.services.container import Services

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, services: Services, hub: Hub, metrics: NodeMetrics) -> None:
        self.s = services
        self.hub = hub
        self.handlers = Handlers(services, metrics)
        self._ids = itertools.count(1)
        # Connection ids are unique across restarts of a node with the same id, so a registry entry left
        # by the previous run can never be mistaken for a new connection.
        self._boot = secrets.token_hex(3)
        self.node_id = services.config.effective_node_id
        self.accepting = True

    async def handle(self, request: web.Request) -> web.StreamResponse:
        config = self.s.config
        if not self.accepting:
            raise web.HTTPServiceUnavailable(text="draining")
        # aiohttp refuses a message of max_msg_size bytes or more; +1 makes max_frame_bytes (what auth_ok
        # announces) the largest frame accepted, as docs/protocol.md says.
        ws = web.WebSocketResponse(
            max_msg_size=config.max_frame_bytes + 1, autoping=True, heartbeat=None, compress=False
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        conn_id = f"{self.node_id}/{self._boot}/{next(self._ids)}"
        conn = Connection(conn_id, ws, transport, config.max_send_buffer, self.hub.stats)
        self.hub.add(conn)
        try:
            await self._read_loop(conn)
        finally:
            self.hub.remove(conn)
            if conn.user is not None:
                try:
                    await self.s.presence.disconnected(conn.user_id, conn.terminal, conn.conn_id)
                except Exception:
                    log.exception("unregistering %s failed", conn.conn_id)
                try:
                    await self.s.calls.disconnected(conn.conn_id)  # a call bound to it ends
                except Exception:
                    log.exception("ending the call of %s failed", conn.conn_id)
            log.info(
                "ws_closed",
                extra={
                    "conn": conn.conn_id,
                    "user": conn.user_id or None,
                    "terminal": conn.terminal or None,
                    # the code this node sent, else the peer's, else 1006 (the socket just dropped)
                    "code": conn.close_code or ws.close_code or 1006,
                    "seconds": round(time.monotonic() - conn.connected_at, 1),
                },
            )
        return ws

    async def _read_loop(self, conn: Connection) -> None:
        ws = conn.ws
        stats = self.hub.stats
        async for msg in ws:
            conn.last_seen = time.monotonic()
            stats.frames_in += 1
            if msg.type is WSMsgType.TEXT or msg.type is WSMsgType.BINARY:
                result = conn.session.receive(msg.data)
                if isinstance(result, Rejection):
                    conn.send(encode(result.error))
                    if result.close is not None:
                        conn.close(result.close, result.error.message)
                    continue
                if isinstance(result, frames.Auth):
                    await self._authenticate(conn, result)
                else:
                    await self.handlers.handle(conn, result)
            elif msg.type is WSMsgType.ERROR:
                break
        if ws.close_code == 1009:
            log.info("closed %s: frame too big", conn.conn_id)

    async def _authenticate(self, conn: Connection, frame: frames.Auth) -> None:
        try:
            principal = await self.s.auth.authenticate(frame.token)
            user = await self.s.accounts.user(principal.user_id)
        except HubbubError as exc:
            conn.send(error_frame(exc, frame.rid))
            # A busy or unreachable database is no verdict on the token: reconnect, not the terminal 4401.
            retry = exc.code is Code.UNAVAILABLE
            conn.close(Close.GOING_AWAY if retry else Close.UNAUTHORIZED, exc.message)
            return
        if self._over_user_cap(user.id, frame.terminal):
            refusal = HubbubError(Code.RATE_LIMITED, "too many connections for this user", retry_after=5)
            conn.send(error_frame(refusal, frame.rid))
            conn.close(Close.TOO_MANY_CONNECTIONS, refusal.message)
            return
        conn.user, conn.terminal, conn.sid = user, frame.terminal, principal.sid
        self.hub.claim(conn)
        # Register before saying auth_ok: a client told it is online must be reachable, and the old holder
        # of this terminal's slot is replaced first.
        try:
            await self.s.presence.connected(user.id, frame.terminal, conn.conn_id)
            # Again, now that a revocation or a ban can find this connection: one that landed after the
            # check above but before the registration would otherwise have missed it (docs/security.md).
            await self.s.auth.authenticate(frame.token)
        except HubbubError as exc:
            conn.send(error_frame(exc, frame.rid))
            if exc.code is Code.UNAVAILABLE:
                conn.close(Close.GOING_AWAY, "registry unavailable, reconnect")
            elif exc.code is Code.TOKEN_REVOKED:
                conn.close(Close.REVOKED, exc.message)
            else:
                conn.close(Close.UNAUTHORIZED, exc.message)
            return
        if conn.closing:
            return  # replaced by a newer login of this terminal (4409), or revoked, while registering
        conn.session.authenticated()
        self.hub.bind(conn)
        log.info("ws_opened", extra={"conn": conn.conn_id, "user": user.id, "terminal": frame.terminal})
        config = self.s.config
        conn.send(
            encode(
                frames.AuthOk(
                    user=user,
                    terminal=frame.terminal,
                    heartbeat=config.heartbeat_s,
                    ts=now_ms(),
                    rid=frame.rid,
                    limits=frames.Limits(
                        max_text_chars=config.max_text_chars,
                        max_frame_bytes=config.max_frame_bytes,
                        recall_window_s=config.recall_window_s,
                        edit_window_s=config.edit_window_s,
                        max_reactions=config.max_reactions,
                        forward_max_items=config.forward_max_items,
                        forward_max_targets=config.forward_max_targets,
                    ),
                )
            )
        )

    def _over_user_cap(self, user_id: int, terminal: str) -> bool:
        """At most ``max_ws_per_user`` live connections per user on this node (docs/security.md). One on the
        same terminal does not count: the new connection replaces it (4409)."""
        live = [c for c in self.hub.by_user.get(user_id, ()) if not c.closing and c.terminal != terminal]
        return len(live) >= self.s.config.max_ws_per_user

    async def drain(self, timeout: float = 5.0) -> None:
        """Hand this node's clients to the others, losing nothing (docs/operations.md, "Draining").

        From here on new ``/ws`` upgrades get 503 and ``/readyz`` answers 503. Sends already queued are
        stored and acknowledged first (the batcher is flushed, so their acks are in the socket buffers ahead
        of the close frame); then every connection is closed with 4503 and its client reconnects elsewhere
        and syncs. A send that races the close is stored without its ack reaching the client, which resends
        the same cmid on another node and gets the original ack (idempotent): nothing lost, nothing doubled.
        Returns once every socket has closed, or after ``timeout`` seconds.
        """
        self.accepting = False
        with contextlib.suppress(Exception):  # storage down: those sends fail and their clients retry
            await asyncio.wait_for(self.s.messages.close(), timeout / 2)
        await self.hub.close_all(Close.DRAINING, "server is restarting, reconnect")
        for _ in range(int(timeout / 2 / 0.02)):  # the other half of the budget for the sockets to close
            if not self.hub.by_id:
                break
            await asyncio.sleep(0.02)
        log.info("drained", extra={"left_open": len(self.hub.by_id)})
