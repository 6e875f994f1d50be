""" "Delete for me": hiding messages from one user's own view, applied to everything they read.

A hidden message keeps its seq (sync stays gap-free) and comes back with ``body: {"hidden": true}``
(docs/protocol.md, "Message actions"). History and database pulls ask storage for the user's hidden seqs in
the page's range (one indexed read). A hot group's pulls are served from a cache precisely so that they do not
read the database per member: there this node reads who hid what in the whole conversation at most every
``MEMO_S`` seconds (one read per group, whatever its size). The hiding node forgets its entry at once; another
node's view lags at most that long, and the user's terminals are told at once by the ``hidden`` push anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import msgspec

from hubbub.core.models import Message
from hubbub.engines.storage.base import Storage

MEMO_S = 5.0
#: Conversations remembered before the memo starts over (bounded memory).
MEMO_MAX = 10_000


def masked(message: Message) -> Message:
    return msgspec.structs.replace(message, body={"hidden": True})


async def mask(storage: Storage, user_id: int, conv: str, found: list[Message]) -> list[Message]:
    """``found`` (ascending) with the user's hidden messages masked."""
    if not found:
        return found
    hidden = set(await storage.hidden_seqs(user_id, conv, found[0].seq - 1, found[-1].seq))
    if not hidden:
        return found
    return [masked(m) if m.seq in hidden else m for m in found]


class HiddenMemo:
    """Per node: conv -> user -> hidden seqs, read at most every ``MEMO_S`` seconds (hot-group pulls)."""

    def __init__(self, storage: Storage, clock: Callable[[], float] = time.monotonic) -> None:
        self.storage = storage
        self.clock = clock
        self._memo: dict[str, tuple[float, dict[int, frozenset[int]]]] = {}

    async def seqs(self, user_id: int, conv: str) -> frozenset[int]:
        now = self.clock()
        kept = self._memo.get(conv)
        if kept is None or now - kept[0] >= MEMO_S:
            if len(self._memo) >= MEMO_MAX:
                self._memo.clear()
            found = await self.storage.hidden_in(conv)
            kept = (now, {uid: frozenset(seqs) for uid, seqs in found.items()})
            self._memo[conv] = kept
        return kept[1].get(user_id, frozenset())

    def forget(self, conv: str) -> None:
        self._memo.pop(conv, None)

    async def mask_encoded(
        self, user_id: int, conv: str, found: Sequence[bytes]
    ) -> Sequence[Message | bytes]:
        """Cached messages (encoded JSON) with the user's hidden ones decoded and masked."""
        hidden = await self.seqs(user_id, conv)
        if not hidden:
            return found
        out: list[Message | bytes] = []
        for data in found:
            message = _decode(data)
            out.append(masked(message) if message.seq in hidden else data)
        return out


_decode = msgspec.json.Decoder(Message).decode
