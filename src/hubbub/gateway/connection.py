"""One client connection: who it is, and the only way bytes are written to its socket.

Each connection's send buffer is its transport's write buffer, drained by the event loop on its own (the
per-connection writer). ``write`` never waits: a connection whose buffer passes ``max_buffer`` bytes is a slow
consumer and is cut off (close code 4529), so it can neither grow server memory nor delay anyone else.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from aiohttp import web

from hubbub.gateway.wire import text_frame
from hubbub.protocol.close_codes import Close
from hubbub.protocol.session import Session

if TYPE_CHECKING:
    from hubbub.core.models import User


class WireStats:
    """Counters of this node's socket traffic (read by the metrics collector at scrape time)."""

    __slots__ = ("bytes_out", "frames_in", "frames_out")

    def __init__(self) -> None:
        self.frames_out = 0
        self.bytes_out = 0
        self.frames_in = 0


class Connection:
    __slots__ = (
        "close_code",
        "closing",
        "conn_id",
        "connected_at",
        "inflight",
        "last_seen",
        "max_buffer",
        "session",
        "sid",
        "signalled",
        "slot",
        "stats",
        "terminal",
        "transport",
        "user",
        "ws",
    )

    def __init__(
        self,
        conn_id: str,
        ws: web.WebSocketResponse,
        transport: asyncio.Transport,
        max_buffer: int,
        stats: WireStats,
    ) -> None:
        self.conn_id = conn_id
        self.ws = ws
        self.transport = transport
        self.max_buffer = max_buffer
        self.stats = stats
        self.session = Session()
        self.user: User | None = None
        self.terminal = ""
        #: The registry slot: the terminal, or ``<terminal>#<device>`` for a client that names its device.
        self.slot = ""
        self.sid = ""
        self.connected_at = self.last_seen = time.monotonic()
        self.closing = False
        #: The code this side closed with (the peer's echo may differ); None if the peer closed first.
        self.close_code: int | None = None
        self.inflight = 0
        #: Per hot group, the newest seq this connection was signalled (services/hot/signals.py).
        self.signalled: dict[str, int] = {}

    @property
    def user_id(self) -> int:
        return self.user.id if self.user is not None else 0

    def send(self, payload: bytes) -> bool:
        """Frame and write one encoded server frame."""
        return self.write(text_frame(payload))

    def write(self, frame: bytes) -> bool:
        """Write an already framed message; False if the connection is gone or was just cut off."""
        if self.closing or self.transport.is_closing():
            return False
        if self.transport.get_write_buffer_size() > self.max_buffer:
            self.abort(Close.SLOW_CONSUMER)
            return False
        self.transport.write(frame)
        self.stats.frames_out += 1
        self.stats.bytes_out += len(frame)
        return True

    def close(self, code: Close, reason: str) -> None:
        """Close politely: a close frame, then the handshake, in the background."""
        if self.closing:
            return
        self.closing = True
        self.close_code = int(code)
        self.session.closed()
        asyncio.get_running_loop().create_task(self.ws.close(code=int(code), message=reason.encode()[:120]))

    def abort(self, code: Close) -> None:
        """Close now, dropping what is queued: for peers that do not read (their buffer is full anyway)."""
        if self.closing:
            return
        self.closing = True
        self.close_code = int(code)
        self.session.closed()
        try:
            # Best effort: the close code goes in front of nothing, since the buffer is not draining.
            self.transport.write(b"\x88\x02" + int(code).to_bytes(2, "big"))
        finally:
            self.transport.abort()
