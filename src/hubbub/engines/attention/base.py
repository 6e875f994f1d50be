"""Which terminals reported that nobody is looking at them (issue 17, "When to push").

A terminal reports ``visibility`` on its WebSocket (docs/protocol.md): a background tab or a phone with the
app in the background still holds a live connection, but its user needs a push. A user *attends* while at
least one of their online terminals (the registry's presence) is not in the background; only users who do
not attend are pushed.

Contract (tests/contract/test_attention.py runs it against every implementation):
- ``set_background(user, terminal, True, ttl_ms)`` marks the terminal for ``ttl_ms``; the gateway renews it
  while the connection lives (on its heartbeats), so the mark of a node that died lapses by itself.
- ``set_background(..., False, ...)`` (the terminal came back, or its connection closed) removes it at once.
- ``background(user_ids, now)`` names each user's terminals marked and not lapsed at ``now``; users with none
  are left out. One round trip for any number of users.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence


class Attention(abc.ABC):
    @abc.abstractmethod
    async def set_background(self, user_id: int, terminal: str, background: bool, ttl_ms: int) -> None: ...

    @abc.abstractmethod
    async def background(self, user_ids: Sequence[int], now: int) -> dict[int, set[str]]: ...

    async def close(self) -> None:  # noqa: B027  (memory holds nothing to close)
        """Release connections (the Redis one)."""
