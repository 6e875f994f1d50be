"""The hot-group state interface.

Contract (tests/contract/test_hotgroups.py runs it against every implementation):
- ``append`` keeps the newest ``capacity`` messages of a conversation (by seq), encoded once as JSON;
  appending a seq already held is a no-op.
- ``recent(conv, after_seq, limit)`` returns the cached messages after_seq + 1, after_seq + 2, ... ascending,
  at most ``limit``, stopping at the first seq it does not hold (the cache may have holes: older ranges are
  added as they are read from the database); None if it does not hold after_seq + 1.
- ``replace`` sets a message's copy in a group's cache (a recall), whether that seq was held or not; a group
  with no cache gets none.
- ``drop_through(conv, seq)`` removes every cached message at or below ``seq`` (retention purged them) and
  keeps ``seq`` as the group's floor: a later ``append`` or ``replace`` of a seq at or below it is a no-op, so
  a pull that read purged rows just before the purge cannot put them back.
- Nothing here is durable: losing it all (a Redis restart) costs at most database reads.

Which terminal was signalled how far is not kept here but by the node that holds the terminal
(services/hot/signals.py): only that node ever asks, and a mark shared across nodes hid signals from a
member's terminal on another node.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence


class HotState(abc.ABC):
    capacity: int

    @abc.abstractmethod
    async def append(self, conv: str, items: Sequence[tuple[int, bytes]]) -> None:
        """Cache (seq, encoded message) pairs."""

    @abc.abstractmethod
    async def replace(self, conv: str, seq: int, data: bytes) -> None:
        """Set the cached copy of message ``seq`` (a recall blanks it) if the group has a cache, held or not:
        a pull that read the old copy from the database just before the recall then cannot add it after
        (``append`` adds only seqs not held)."""

    @abc.abstractmethod
    async def drop_through(self, conv: str, seq: int) -> None:
        """Forget messages at or below ``seq`` and refuse them from now on (see the module contract)."""

    @abc.abstractmethod
    async def recent(self, conv: str, after_seq: int, limit: int) -> list[bytes] | None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...
