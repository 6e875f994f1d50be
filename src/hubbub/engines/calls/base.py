"""The call store interface: the one copy of each live call, and who is in one.

The store keeps each call as opaque bytes (the call rules, ``services/calls/machine.py``, own the format)
with a version it bumps on every write.

Contract (tests/contract/test_calls.py runs it against every implementation):
- ``create`` stores a new call at version 1 and marks both parties busy **atomically**, only if neither is
  in a call already; otherwise it stores nothing and names the busy party. Two invites racing for one user:
  exactly one wins.
- ``save`` is a compare-and-set: it replaces the call only if the stored one still has version ``expected``
  (a concurrent change, say another device's accept, makes it return False: reload and retry). ``ended``
  removes the call and both busy marks in the same step.
- Everything expires: the call and its busy marks live ``ttl_ms`` past each write, so a call whose nodes all
  died frees its users by itself; a live call is rewritten well within that (its parties' leases).
- ``due`` lists calls whose deadline (given at each write) has passed, for any node's sweeper to tick; the
  compare-and-set makes sure only one node's tick counts.
"""

from __future__ import annotations

import abc


class CallStore(abc.ABC):
    @abc.abstractmethod
    async def create(
        self, call_id: str, parties: tuple[int, int], data: bytes, due: int, ttl_ms: int
    ) -> int | None:
        """Store the call (version 1) and mark both parties busy; or store nothing and return the busy one."""

    @abc.abstractmethod
    async def get(self, call_id: str) -> tuple[int, bytes] | None:
        """(version, data), or None for a call that ended, expired or never was."""

    @abc.abstractmethod
    async def save(
        self,
        call_id: str,
        parties: tuple[int, int],
        data: bytes,
        expected: int,
        *,
        ended: bool,
        due: int,
        ttl_ms: int,
    ) -> bool:
        """Replace the call (version ``expected + 1``) if its stored version is ``expected``."""

    @abc.abstractmethod
    async def of_user(self, user_id: int) -> str | None:
        """The id of the call the user is in, if any."""

    @abc.abstractmethod
    async def due(self, now: int, limit: int = 100) -> list[str]:
        """Ids of calls whose deadline (ms) is at or before ``now``."""

    async def close(self) -> None:  # noqa: B027  (nothing to release in memory)
        """Release connections."""
