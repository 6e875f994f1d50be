"""The WebSocket endpoint: accept, authenticate, then read frames until the connection ends."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time

from aiohttp import WSMsgType, web

from hubbub.core.clock import now_ms
from hubbub.core.errors import HubbubError
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
        ws = web.WebSocketResponse(
            max_msg_size=config.max_frame_bytes, autoping=True, heartbeat=None, compress=False
        )
        await ws.prepare(request)
        transport = request.transport
        if transport is None:
            return ws
        conn_id = f"{self.node_id}/{self._boot}/{next(self._ids)}"
        conn = Connection(conn_id, ws, transport, config.max_send_buffer, self.hub.stats)  # type: ignore[arg-type]
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
            conn.close(Close.UNAUTHORIZED, exc.message)
            return
        conn.user, conn.terminal, conn.sid = user, frame.terminal, principal.sid
        # Register before saying auth_ok: a client told it is online must be reachable, and the old holder
        # of this terminal's slot is replaced first.
        try:
            await self.s.presence.connected(user.id, frame.terminal, conn.conn_id)
        except HubbubError as exc:
            conn.send(error_frame(exc, frame.rid))
            conn.close(Close.GOING_AWAY, "registry unavailable, reconnect")
            return
        conn.session.authenticated()
        self.hub.bind(conn)
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
                    ),
                )
            )
        )

    async def drain(self) -> None:
        self.accepting = False
        await self.hub.close_all(Close.DRAINING, "server is restarting, reconnect")
        await asyncio.sleep(0)
