"""The WebSocket wire below the gateway: a lean RFC 6455 server endpoint, taken over after aiohttp's handshake.

aiohttp answers the upgrade (so every HTTP rule stays where it is: the per-IP cap, draining, the security
headers on the 101), then :func:`detach` takes the socket away from it: the transport gets a
:class:`WsProtocol` and aiohttp is told the connection is gone, so its request, HTTP parser, WebSocket reader and
the two tasks it keeps per connection are freed. What stays per connection is this protocol object, the
``Connection`` and the session: about a third of the memory of an idle aiohttp WebSocket, and a frame costs one
``data_received`` call, not a reader queue, a future and a task switch (docs/benchmarks.md, "Memory per idle
connection").

What it implements of RFC 6455 (server side): masked client frames (an unmasked one, reserved bits, an unknown
opcode or a bad control frame close with 1002), text and binary messages, fragmented ones reassembled, pings
answered with pongs (they are not heartbeats: only messages reach the gateway), the close handshake (a peer's
close is echoed, then the TCP connection is closed), and the size limit (a message over ``max_size`` bytes
closes with 1009 before it is buffered). No extensions: the handshake never offers compression.

This module and ``server.py`` are the only places that know the HTTP library.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)

#: Key in the aiohttp request where the /ws guard leaves the release of its per-IP slot; a handler that
#: detaches the socket takes it and calls it when the connection ends (platform/limits.py).
WS_RELEASE: web.RequestKey[Callable[[], None]] = web.RequestKey("hubbub.ws_release")

_PROTOCOL_ERROR = 1002
_TOO_BIG = 1009
#: Frames queued for the gateway before the socket stops being read (a client not waiting for replies).
_MAX_INBOX = 64
#: After this side's close frame, how long the peer has to answer before the socket is closed anyway.
_CLOSE_GRACE_S = 5.0


def _unmask(payload: bytes, mask: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")


def _close_frame(code: int, reason: bytes = b"") -> bytes:
    body = code.to_bytes(2, "big") + reason[:120]
    return bytes((0x88, len(body))) + body


class WsProtocol(asyncio.Protocol):
    """One WebSocket connection after the handshake. ``on_message(payload)`` is awaited for each message in
    order (one connection's frames never overlap); ``on_closed()`` is called once, when the socket is gone."""

    __slots__ = (
        "_buf",
        "_close_timer",
        "_frag",
        "_frag_op",
        "_inbox",
        "_reader",
        "close_code",
        "close_sent",
        "max_size",
        "on_closed",
        "on_message",
        "transport",
    )

    def __init__(self, transport: asyncio.Transport, max_size: int) -> None:
        self.transport = transport
        self.max_size = max_size
        self.on_message: Callable[[bytes], Awaitable[None]] | None = None
        self.on_closed: Callable[[], None] | None = None
        #: The close code this side sent, else the peer's; None while open.
        self.close_code: int | None = None
        self.close_sent = False
        self._buf = b""
        self._frag: list[bytes] | None = None
        self._frag_op = 0
        self._inbox: list[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while end - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            size = b1 & 0x7F
            head = 2
            if size == 126:
                if end - pos < 4:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                head = 4
            elif size == 127:
                if end - pos < 10:
                    break
                size = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                head = 10
            op = b0 & 0x0F
            if b0 & 0x70 or not b1 & 0x80:  # reserved bits (no extension was agreed), or not masked
                self._fail(_PROTOCOL_ERROR, "protocol error")
                return
            if op >= 8:
                if size > 125 or not b0 & 0x80:
                    self._fail(_PROTOCOL_ERROR, "bad control frame")
                    return
            elif (
                size + (sum(map(len, self._frag)) if self._frag is not None and op == 0 else 0)
                > self.max_size
            ):
                self._fail(_TOO_BIG, "message too big")
                return
            total = head + 4 + size
            if end - pos < total:
                break
            mask = buf[pos + head : pos + head + 4]
            payload = _unmask(buf[pos + head + 4 : pos + total], mask)
            pos += total
            if not self._frame(b0 & 0x80, op, payload):
                return
        self._buf = buf[pos:] if pos < end else b""

    def eof_received(self) -> bool | None:
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        if self.close_code is None:
            self.close_code = 1006
        self._inbox = None
        self._buf = b""
        self._frag = None
        on_closed, self.on_closed = self.on_closed, None
        self.on_message = None
        if on_closed is not None:
            on_closed()

    # -- frames -----------------------------------------------------------------------------------
    def _frame(self, fin: int, op: int, payload: bytes) -> bool:
        """Handle one frame; False once the connection is being closed (stop parsing)."""
        if op == 0x1 or op == 0x2:
            if self._frag is not None:
                self._fail(_PROTOCOL_ERROR, "expected a continuation frame")
                return False
            if fin:
                self._deliver(payload)
            else:
                self._frag, self._frag_op = [payload], op
        elif op == 0x0:
            if self._frag is None:
                self._fail(_PROTOCOL_ERROR, "continuation of nothing")
                return False
            self._frag.append(payload)
            if fin:
                message, self._frag = b"".join(self._frag), None
                self._deliver(message)
        elif op == 0x9:  # ping: answered here, not a heartbeat
            if not self.close_sent:
                self.transport.write(bytes((0x8A, len(payload))) + payload)
        elif op == 0xA:
            pass
        elif op == 0x8:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if self.close_code is None:
                self.close_code = code
            if not self.close_sent:  # echo the peer's close, then hang up
                self.close_sent = True
                self.transport.write(_close_frame(code) if len(payload) >= 2 else b"\x88\x00")
            self.transport.close()
            return False
        else:
            self._fail(_PROTOCOL_ERROR, "unknown opcode")
            return False
        return True

    def _deliver(self, payload: bytes) -> None:
        if self.close_sent:
            return
        inbox = self._inbox
        if inbox is not None:
            inbox.append(payload)
            if len(inbox) >= _MAX_INBOX:
                self.transport.pause_reading()
            return
        self._inbox = [payload]
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        """Hand queued messages to the gateway, one at a time, in order; ends when none are left."""
        try:
            while self._inbox:
                batch = self._inbox
                self._inbox = []
                if len(batch) >= _MAX_INBOX:
                    self.transport.resume_reading()
                for payload in batch:
                    handler = self.on_message
                    if handler is None or self.close_sent:
                        return
                    try:
                        await handler(payload)
                    except Exception:
                        log.exception("handling a frame failed")
        finally:
            self._inbox = None
            self._reader = None

    def _fail(self, code: int, reason: str) -> None:
        """Close at once for a frame that breaks the protocol or the size limit: nothing more is read."""
        self._inbox = None
        self._buf = b""
        if not self.close_sent:
            self.close_sent = True
            self.close_code = code
            self.transport.write(_close_frame(code, reason.encode()))
        self.transport.close()

    # -- what the gateway calls -------------------------------------------------------------------
    async def close(self, *, code: int, message: bytes = b"") -> None:
        """Send a close frame; the socket closes when the peer answers, or after a grace period."""
        if self.close_sent or self.transport.is_closing():
            return
        self.close_sent = True
        self.close_code = code
        self._inbox = None
        self.transport.write(_close_frame(code, message))
        self._close_timer = asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, self.transport.abort)


def detach(request: web.Request, transport: asyncio.Transport, max_size: int) -> WsProtocol:
    """Take the socket of an upgraded request (``WebSocketResponse.prepare`` has sent the 101) away from
    aiohttp: from here on its bytes go to the returned protocol, and aiohttp forgets the connection (its
    handler must then return a plain response, which finds no transport to write to)."""
    protocol = WsProtocol(transport, max_size)
    http = request.protocol
    transport.set_protocol(protocol)
    http.transport = None  # so that what follows does not close the socket, which is no longer aiohttp's
    http.connection_lost(None)  # frees the request's parser, timers and the server's record of it
    return protocol
