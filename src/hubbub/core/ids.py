"""Message ids: 64-bit, time-ordered, unique across nodes without coordination.

Layout (Snowflake-like): 41 bits of milliseconds since 2024-01-01, 10 bits of node number, 12 bits of
sequence within the millisecond. The node number comes from the node id so two nodes never collide.
"""

from __future__ import annotations

import time
import zlib

_EPOCH_MS = 1_704_067_200_000


class MessageIds:
    def __init__(self, node_id: str, number: int | None = None) -> None:
        # Without an assigned number, a hash of the node id: fine for one node, a 1-in-1024 collision risk
        # per pair in a cluster, which is why cluster nodes lease one (``set_number``).
        self._node = (number if number is not None else zlib.crc32(node_id.encode())) & 0x3FF
        self._last_ms = 0
        self._seq = 0

    def set_number(self, number: int) -> None:
        self._node = number & 0x3FF

    def next(self) -> int:
        ms = time.time_ns() // 1_000_000 - _EPOCH_MS
        if ms <= self._last_ms:
            # Same millisecond (or the clock stepped back): keep counting from the last one we issued.
            ms = self._last_ms
            self._seq += 1
            if self._seq > 0xFFF:
                ms += 1
                self._seq = 0
        else:
            self._seq = 0
        self._last_ms = ms
        return (ms << 22) | (self._node << 12) | self._seq
