"""The WebSocket endpoint: accept, authenticate, then read frames until the connection ends."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time

from aiohttp import web

from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.engines.registry.base import slot_of
from hubbub.gateway.connection import Connection
from hubbub.gateway.handlers import Handlers, error_frame
from hubbub.gateway.hub import Hub
from hubbub.gateway.transport import WS_RELEASE, detach
from hubbub.metrics import NodeMetrics
from hubbub.protocol import frames
from hubbub.protocol.close_codes import Close
from hubbub.protocol.frames import encode
from hubbub.protocol.session import Rejection
from hubbub.services.bot_scopes import check_socket
from hubbub.services.container import Services
from hubbub.services.social_rules import valid_device

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
        # aiohttp does the handshake (and every HTTP rule around it); then the socket is detached from it
        # and read by the lean protocol of transport.py, which enforces max_frame_bytes (what auth_ok
        # announces) as the largest message accepted.
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, compress=False)
        await ws.prepare(request)
        transport = request.transport
        if transport is None or transport.is_closing():
            return ws
        wire = detach(request, transport, config.max_frame_bytes)
        conn_id = f"{self.node_id}/{self._boot}/{next(self._ids)}"
        conn = Connection(conn_id, wire, transport, config.max_send_buffer, self.hub.stats, self.hub.outbox)
        self.hub.add(conn)
        release = request.pop(WS_RELEASE, None)  # the per-IP slot is held until the socket closes
        stats = self.hub.stats

        async def on_message(payload: bytes) -> None:
            conn.last_seen = time.monotonic()
            stats.frames_in += 1
            await self._receive(conn, payload)

        def on_closed() -> None:
            if release is not None:
                release()
            asyncio.get_running_loop().create_task(self._closed(conn))

        wire.on_message = on_message
        wire.on_closed = on_closed
        return web.Response()  # aiohttp no longer holds the socket: this goes nowhere

    async def _receive(self, conn: Connection, payload: bytes) -> None:
        result = conn.session.receive(payload)
        if isinstance(result, Rejection):
            conn.send(encode(result.error))
            if result.close is not None:
                conn.close(result.close, result.error.message)
            return
        if isinstance(result, frames.Auth):
            await self._authenticate(conn, result)
        else:
            if not isinstance(result, frames.Ping):  # the idlest session is the one evicted
                self.s.presence.active(conn.user_id, conn.slot, conn.conn_id)
            await self.handlers.handle(conn, result)

    async def _closed(self, conn: Connection) -> None:
        """The socket is gone: forget the connection, unregister it, end its call."""
        self.hub.remove(conn)
        conn.closing = True
        if conn.user is not None:
            try:
                await self.s.presence.disconnected(conn.user_id, conn.slot, conn.conn_id)
            except Exception:
                log.exception("unregistering %s failed", conn.conn_id)
            try:
                await self.s.webpush.disconnected(conn.conn_id)  # its background mark goes
            except Exception:
                log.exception("clearing the visibility of %s failed", conn.conn_id)
            try:
                await self.s.calls.disconnected(conn.conn_id)  # a call bound to it ends
            except Exception:
                log.exception("ending the call of %s failed", conn.conn_id)
        code = conn.close_code or conn.ws.close_code or 1006
        if code == 1009:
            log.info("closed %s: frame too big", conn.conn_id)
        log.info(
            "ws_closed",
            extra={
                "conn": conn.conn_id,
                "user": conn.user_id or None,
                "terminal": conn.terminal or None,
                # the code this node sent, else the peer's, else 1006 (the socket just dropped)
                "code": code,
                "seconds": round(time.monotonic() - conn.connected_at, 1),
            },
        )

    async def _authenticate(self, conn: Connection, frame: frames.Auth) -> None:
        if frame.device is not None and not valid_device(frame.device):
            refusal = invalid("device", "1 to 64 characters from A-Z a-z 0-9 _ -")
            conn.send(error_frame(refusal, frame.rid))
            conn.close(Close.UNAUTHORIZED, refusal.message)
            return
        try:
            principal = await self.s.auth.authenticate(frame.token)
            check_socket(principal.scopes)
            user = await self.s.accounts.user(principal.user_id)
        except HubbubError as exc:
            conn.send(error_frame(exc, frame.rid))
            # A busy or unreachable database is no verdict on the token: reconnect, not the terminal 4401.
            retry = exc.code is Code.UNAVAILABLE
            conn.close(Close.GOING_AWAY if retry else Close.UNAUTHORIZED, exc.message)
            return
        slot = slot_of(frame.terminal, frame.device)
        if self._over_user_cap(user.id, slot):
            refusal = HubbubError(Code.RATE_LIMITED, "too many connections for this user", retry_after=5)
            conn.send(error_frame(refusal, frame.rid))
            conn.close(Close.TOO_MANY_CONNECTIONS, refusal.message)
            return
        conn.user, conn.terminal, conn.slot, conn.sid = user, frame.terminal, slot, principal.sid
        conn.scopes = principal.scopes
        self.hub.claim(conn)
        # Register before saying auth_ok: a client told it is online must be reachable, and the old holder
        # of this terminal's slot is replaced first.
        try:
            await self.s.presence.connected(user.id, slot, conn.conn_id)
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
        with contextlib.suppress(HubbubError):  # the sessions list's "last active": never a reason to refuse
            await self.s.social.session_seen(principal.sid)
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
                    device=frame.device,
                    session=principal.sid,
                )
            )
        )

    def _over_user_cap(self, user_id: int, slot: str) -> bool:
        """At most ``max_ws_per_user`` live connections per user on this node (docs/security.md). One in the
        same slot (terminal, or device) does not count: the new connection replaces it (4409)."""
        live = [c for c in self.hub.by_user.get(user_id, ()) if not c.closing and c.slot != slot]
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
