"""Ids: the one spelling of every id a client may write, and message ids.

Canonical spelling (docs/protocol.md, "Ids"): ASCII digits, no sign, no spaces, no leading zero; user, group
and request ids from 1 to :data:`MAX_ID`, seqs from 0 to :data:`MAX_SEQ`. One spelling per id, so two strings
never name the same thing (``g:07`` and ``g:7`` once did: a group's send batch looked up the one and found the
other, and failed every message in the batch). Every edge (REST paths and queries, WebSocket frames) parses
with these, and only these, and refuses anything else with ``invalid_id``.

Message ids: 64-bit, time-ordered, unique across nodes without coordination. Layout (Snowflake-like): 41 bits
of milliseconds since 2024-01-01, 10 bits of node number, 12 bits of sequence within the millisecond. The
node number comes from the node id so two nodes never collide.
"""

from __future__ import annotations

import time
import zlib
from typing import Annotated

from msgspec import Meta

_EPOCH_MS = 1_704_067_200_000

#: User, group and friend-request ids are PostgreSQL ``integer`` columns: a larger number cannot name
#: anything, and binding one fails in the driver (which once surfaced as 503 ``unavailable``).
MAX_ID = 2**31 - 1
#: Seqs are ``bigint``; 2^53 keeps them exact in JavaScript clients.
MAX_SEQ = 2**53

#: A user (or group) id in a JSON body or frame: JSON integers have one spelling, so only the range matters.
IdField = Annotated[int, Meta(ge=1, le=MAX_ID)]
#: A seq in a JSON body or frame.
SeqField = Annotated[int, Meta(ge=0, le=MAX_SEQ)]


def parse_number(text: str, high: int) -> int | None:
    """``text`` as a number from 0 to ``high`` if it is written canonically, else None.

    Canonical: ASCII digits only (``str.isdigit`` also takes "²", which ``int`` refuses, and "７" or "١",
    which ``int`` reads as 7 and 1), no sign or spaces (``int`` takes "+7" and " 7"), no underscores, no
    leading zero. The length is checked before ``int``, so thousands of digits cost nothing.
    """
    if not text or len(text) > len(str(high)) or not (text.isascii() and text.isdigit()):
        return None
    if text[0] == "0" and len(text) > 1:
        return None
    value = int(text)
    return value if value <= high else None


def parse_id(text: str) -> int | None:
    """A user, group or request id (1 to :data:`MAX_ID`), or None if ``text`` does not spell one."""
    value = parse_number(text, MAX_ID)
    return value if value else None


def parse_seq(text: str, high: int = MAX_SEQ) -> int | None:
    """A seq (0 to ``high``), or None if ``text`` does not spell one."""
    return parse_number(text, high)


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
