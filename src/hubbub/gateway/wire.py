"""Server-to-client WebSocket framing (RFC 6455 §5.2), done once per event rather than once per socket.

Frames from a server are never masked and we never compress, so a frame is a 2-10 byte header plus the
payload: encoding it here lets one push to a thousand sockets cost one encode and a thousand writes.
"""

from __future__ import annotations

import struct

_TEXT_FIN = 0x81


def text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((_TEXT_FIN, n)) + payload
    if n < 65536:
        return struct.pack("!BBH", _TEXT_FIN, 126, n) + payload
    return struct.pack("!BBQ", _TEXT_FIN, 127, n) + payload
