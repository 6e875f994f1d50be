"""The WebSocket wire below the gateway: a lean RFC 6455 server endpoint, taken over after aiohttp's handshake.

aiohttp answers the upgrade (so every HTTP rule stays where it is: the per-IP cap, draining, the security
headers on the 101), then :func:`detach` takes the socket away from it: the transport gets a
:class:`WsProtocol` and aiohttp is told the connection is gone, so its request, HTTP parser, WebSocket reader and
the two tasks it keeps per connection are freed. What stays per connection is this protocol object, the
``Connection`` and the session: about a third of the memory of an idle aiohttp WebSocket, and a frame costs one
``data_received`` call, not a reader queue, a future and a task switch (docs/benchmarks.md, "Memory per idle
connection").

The framing is the sans-I/O core of the ``websockets`` library (``websockets.protocol.Protocol``, server side,
already open): it parses and unmasks the client's frames and rejects what breaks RFC 6455 (an unmasked frame,
reserved bits, an unknown opcode, a bad control frame, continuation frames out of order, an invalid close code
or reason: close 1002), enforces the size limit over all the fragments of a message (close 1009, before the
payload is read), answers pings with pongs (they are not heartbeats: only messages reach the gateway) and runs
the close handshake (a peer's close is echoed, then the TCP connection is closed; this side's close waits for
the echo). It logs "connection closed" at INFO per socket, so logs.py quiets it.

What this module still does: it moves bytes between that core and the transport (an empty chunk from it means
close the socket; a close this side started is cut off after a grace period), reassembles fragmented messages,
and hands messages to the gateway one at a time and in order, pausing the socket when too many are waiting.
Outgoing data frames do not go through the core: ``wire.text_frame`` builds a frame's bytes once and fan-out
writes them straight to every transport. No extensions: the handshake never offers compression.

This module and ``server.py`` are the only places that know the HTTP library.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import cast

from aiohttp import web
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

log = logging.getLogger(__name__)

#: Key in the aiohttp request where the /ws guard leaves the release of its per-IP slot; a handler that
#: detaches the socket takes it and calls it when the connection ends (platform/limits.py).
WS_RELEASE: web.RequestKey[Callable[[], None]] = web.RequestKey("hubbub.ws_release")

#: Messages queued for the gateway before the socket stops being read (a client not waiting for replies).
_MAX_INBOX = 64
#: After this side's close frame, how long the peer has to answer before the socket is closed anyway.
_CLOSE_GRACE_S = 5.0


class WsProtocol(asyncio.Protocol):
    """One WebSocket connection after the handshake. ``on_message(payload)`` is awaited for each message in
    order (one connection's messages never overlap); ``on_closed()`` is called once, when the socket is gone.

    The bytes go through a ``websockets`` sans-I/O :class:`~websockets.protocol.Protocol`; this class moves
    bytes between it and the transport and turns its frames into messages for the gateway."""

    __slots__ = (
        "_close_timer",
        "_frag",
        "_inbox",
        "_lost",
        "_reader",
        "_ws",
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
        self._ws = Protocol(Side.SERVER, state=State.OPEN, max_size=max_size)
        #: The parts of a fragmented message so far (the library checks their order and total size).
        self._frag: list[bytes] | None = None
        self._inbox: list[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False

    @property
    def close_code(self) -> int | None:
        """The close code this side sent, else the peer's; 1006 once the socket dropped without one; None
        while open."""
        ws = self._ws
        close = ws.close_sent or ws.close_rcvd
        if close is not None:
            return close.code
        return 1006 if self._lost else None

    @property
    def close_sent(self) -> bool:
        """Whether this side sent a close frame (its own, an echo of the peer's, or a protocol failure's):
        no message is handed to the gateway after it."""
        return self._ws.close_sent is not None

    # -- asyncio.Protocol -------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        ws = self._ws
        ws.receive_data(data)
        # After the handshake the only events are frames, and an unmasked payload is always ``bytes``.
        for frame in cast("list[Frame]", ws.events_received()):
            opcode = frame.opcode
            if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
                if frame.fin:
                    self._deliver(cast(bytes, frame.data))
                else:
                    self._frag = [cast(bytes, frame.data)]
            elif opcode is Opcode.CONT and self._frag is not None:
                self._frag.append(cast(bytes, frame.data))
                if frame.fin:
                    message, self._frag = b"".join(self._frag), None
                    self._deliver(message)
            # PING (already answered), PONG and CLOSE (already echoed) need nothing more here.
        self._send()

    def eof_received(self) -> bool | None:
        self._ws.receive_eof()
        self._send()
        return None  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self._lost = True
        self._inbox = None
        self._frag = None
        on_closed, self.on_closed = self.on_closed, None
        self.on_message = None
        if on_closed is not None:
            on_closed()

    # -- between the library and the socket -------------------------------------------------------
    def _send(self) -> None:
        """Write what the library has to send (pongs, close frames); its end-of-stream marker (an empty
        chunk) closes the socket, which a server does once the close handshake is over or failed."""
        ws = self._ws
        writes = ws.data_to_send()
        if not writes:
            return
        transport = self.transport
        for chunk in writes:
            if chunk:
                transport.write(chunk)
            else:
                transport.close()
        if self.close_sent:
            self._inbox = None  # queued messages are dropped once this side closes
        if ws.close_expected() and self._close_timer is None and not transport.is_closing():
            self._close_timer = asyncio.get_running_loop().call_later(_CLOSE_GRACE_S, transport.abort)

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

    # -- what the gateway calls -------------------------------------------------------------------
    async def close(self, *, code: int, message: bytes = b"") -> None:
        """Send a close frame; the socket closes when the peer answers, or after a grace period."""
        if self.close_sent or self.transport.is_closing() or self._ws.state is not State.OPEN:
            return
        self._ws.send_close(code, message.decode(errors="ignore"))
        self._send()


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
