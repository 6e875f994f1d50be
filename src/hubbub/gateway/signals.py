"""Signalling this node's online members of hot groups (push-pull), coalesced per group.

News for a group arriving within one window (``hot_signal_window_ms``) becomes one signal per member: a
``news`` frame, encoded once, written only to local members whose offset (the highest seq they were signalled
or read, in ``HotState``) is behind. A burst of N messages therefore costs each online member about one frame
per window, not N. Mentioned members are signalled at once, with ``mention: true``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from hubbub.engines.broker.base import News
from hubbub.gateway.hub import Hub
from hubbub.gateway.wire import text_frame
from hubbub.protocol.frames import NewsPush, encode
from hubbub.services.hot import HotGroups

log = logging.getLogger(__name__)


class Signaller:
    def __init__(self, hub: Hub, hot: HotGroups, window_s: float) -> None:
        self.hub = hub
        self.hot = hot
        self.window_s = window_s
        self._pending: dict[str, int] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.signals_sent = 0

    def news(self, items: Sequence[News]) -> None:
        for n in items:
            if n.system:
                self.hot.forget(n.conv)
            self.hot.advance(n.conv, n.seq)
            if n.mentions or n.mention_all:
                asyncio.get_running_loop().create_task(self._mention(n))
            if n.seq > self._pending.get(n.conv, 0):
                self._pending[n.conv] = n.seq
        if self._pending and self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.sleep(self.window_s)
            pending, self._pending = self._pending, {}
            for conv, seq in pending.items():
                try:
                    await self._signal(conv, seq, None, mention=False)
                except Exception:
                    log.exception("signalling %s failed", conv)
        finally:
            self._flusher = None
            if self._pending:
                self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _mention(self, n: News) -> None:
        try:
            await self._signal(n.conv, n.seq, None if n.mention_all else set(n.mentions), mention=True)
        except Exception:
            log.exception("mention signal for %s failed", n.conv)

    async def _signal(self, conv: str, seq: int, only: set[int] | None, *, mention: bool) -> None:
        roster = await self.hot.roster(conv)
        online = self.hub.by_user
        candidates = (
            only if only is not None else (online.keys() if len(online) < len(roster) else roster.keys())
        )
        local = [uid for uid in candidates if uid in online and uid in roster]
        if not local:
            return
        before = await self.hot.state.raise_offsets(conv, dict.fromkeys(local, seq))
        frame = text_frame(encode(NewsPush(conv=conv, seq=seq, mention=mention)))
        for uid in local:
            if before[uid] >= seq and not mention:
                continue  # already signalled (or read) this far
            for conn in online.get(uid, ()):
                if conn.write(frame):
                    self.signals_sent += 1
