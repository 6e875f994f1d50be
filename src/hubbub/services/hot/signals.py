"""Signalling this node's live terminals of hot-group news, coalesced per group (push-pull).

News of a group arriving within one window (``hot_signal_window_ms``) becomes one ``news`` frame per
terminal that is behind: each live terminal remembers the newest seq it was signalled per group
(``Terminal.signalled``), and only a terminal whose mark is below the news is written to. A burst of N
messages therefore costs each online terminal about one frame per window, not N. Mentioned members' terminals
are signalled at once, with ``mention: true``, whatever their mark.

The mark is per terminal, kept by the node that holds it (issue 12.2): a member online on two terminals, on
one node or two, gets every signal on each of them, since nothing one node does can mark the other node's
terminal as signalled. A terminal that reconnects starts with no marks, syncs, and may get one signal for
messages it already holds (a client compares ``seq`` with what it has).

Every member's terminals are signalled, the sender's included: its other terminals need the message, and the
sending terminal, which knows the seq from its ack, ignores a signal it is not behind on.

This is pure logic: the gateway gives it the node's live terminals and writes the bytes (``Audience``);
targets come from the group's roster (``Rosters``), so a member who was removed is not signalled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from hubbub.services import pushes
from hubbub.services.hot.news import News
from hubbub.services.hot.rosters import Rosters

log = logging.getLogger(__name__)


class Terminal(Protocol):
    """One live, authenticated connection, as signalling sees it."""

    #: Per hot group, the newest seq this terminal was signalled (owned by the Signaller).
    signalled: dict[str, int]


T = TypeVar("T", bound=Terminal)


class Audience(Protocol[T]):
    """What the gateway offers signalling: its live terminals by user, and a way to write to them."""

    @property
    def terminals(self) -> Mapping[int, Sequence[T]]: ...

    def send(self, terminals: Collection[T], payload: bytes) -> int:
        """Write one encoded frame to each terminal; return how many writes were accepted."""


class Signaller:
    def __init__(self, rosters: Rosters, window_s: float) -> None:
        self.rosters = rosters
        self.window_s = window_s
        self.audience: Audience[Any] | None = None
        self._pending: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._urgent: set[asyncio.Task[None]] = set()
        self.signals_sent = 0

    def attach(self, audience: Audience[Any]) -> None:
        self.audience = audience

    def news(self, items: Sequence[News]) -> None:
        """Queue signals for news this node heard (``HotGroups.heard`` has already dropped stale rosters)."""
        for n in items:
            if not n.signal:
                continue
            if n.mentions or n.mention_all:
                task = asyncio.get_running_loop().create_task(self._mention(n))
                self._urgent.add(task)
                task.add_done_callback(self._urgent.discard)
            if n.seq > self._pending.get(n.conv, 0):
                self._pending[n.conv] = n.seq
        if self._pending and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def flush(self) -> None:
        """Signal everything pending now (the end of a window; tests call it directly)."""
        if self._urgent:
            await asyncio.gather(*self._urgent, return_exceptions=True)
        pending, self._pending = self._pending, {}
        for conv, seq in pending.items():
            try:
                await self.signal(conv, seq)
            except Exception:
                log.exception("signalling %s failed", conv)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.window_s)
        try:
            await self.flush()
        finally:
            self._flusher = None
            if self._pending:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    def close(self) -> None:
        """Drop what is pending: signals are best effort, and a stopping node has no terminals left."""
        self._pending.clear()
        for task in (self._flusher, *self._urgent):
            if task is not None:
                task.cancel()
        self._flusher = None

    async def _mention(self, n: News) -> None:
        try:
            await self.signal(n.conv, n.seq, None if n.mention_all else set(n.mentions), mention=True)
        except Exception:
            log.exception("mention signal for %s failed", n.conv)

    async def signal(
        self, conv: str, seq: int, only: set[int] | None = None, *, mention: bool = False
    ) -> int:
        """Write ``news`` up to ``seq`` to the live terminals of current members that are behind (all of
        ``only``'s terminals for a mention). Returns the number of frames written."""
        if self.audience is None:
            return 0
        online = self.audience.terminals
        if not online:
            return 0
        roster = await self.rosters.get(conv)
        if roster is None:
            return 0
        members = roster.floors
        if only is not None:
            candidates: Collection[int] = only
        else:
            candidates = online.keys() if len(online) < len(members) else members.keys()
        targets = []
        for uid in candidates:
            if uid not in members:
                continue
            for terminal in online.get(uid, ()):
                mark = terminal.signalled.get(conv, 0)
                if mark < seq or mention:
                    terminal.signalled[conv] = max(mark, seq)
                    targets.append(terminal)
        if not targets:
            return 0
        sent = self.audience.send(targets, pushes.news(conv, seq, mention))
        self.signals_sent += sent
        return sent
