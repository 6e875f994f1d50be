"""``HotGroups``: the one entry point of push-pull delivery for the other services and the node.

A message to a hot group is stored once as usual. Then, instead of one push per member:
1. its encoded JSON goes into a bounded cache of the group's recent messages (``HotState``);
2. one small ``News(conv, seq)`` goes to every node (``Routing.broadcast`` of the encoded news: a queue write
   per node);
3. each node's ``Signaller`` coalesces news over a short window and writes a tiny ``news`` frame only to its
   live terminals of current members that are behind; mentioned members get one at once;
4. clients pull the batch they miss; pulls are served from the cache (then the database), off the read loop.

Every group change, hot or not, is announced to every node too, so each drops its roster of the group
(``rosters.py``). Docs: docs/architecture.md, "Hot groups".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import msgspec

from hubbub.config import Config
from hubbub.core.models import Message
from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import NewMessage, Storage, Stored
from hubbub.protocol.frames import encode
from hubbub.services.hot.news import News, decode_news, encode_news
from hubbub.services.hot.policy import HotPolicy
from hubbub.services.hot.pulls import Pulls
from hubbub.services.hot.rosters import Rosters
from hubbub.services.hot.signals import Signaller

log = logging.getLogger(__name__)


class HotGroups:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        routing: Routing,
        state: HotState,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routing = routing
        self.state = state
        self.policy = HotPolicy.of(config)
        self.rosters = Rosters(storage, self.policy, clock)
        self.pulls = Pulls(storage, state, clock)
        self.signaller = Signaller(self.rosters, config.hot_signal_window_ms / 1000)
        #: Groups this node last heard to be push-pull: worth reading a roster for when a pull finds none.
        self._push_pull: set[str] = set()

    # -- what this node hears ---------------------------------------------------------------------
    def heard_broadcast(self, payload: bytes) -> None:
        """A node broadcast arrived (the hub hands every one here): the news it carries."""
        try:
            items = decode_news(payload)
        except msgspec.DecodeError:
            log.error("dropping a node broadcast that is not hot-group news")
            return
        self.heard(items)

    def heard(self, items: Sequence[News]) -> None:
        """News from any node (this one included): drop what it made stale, then queue the signals."""
        for n in items:
            if n.group_changed:
                self.rosters.forget(n.conv)
            if n.signal:
                self._push_pull.add(n.conv)
            else:
                self._push_pull.discard(n.conv)
            self.pulls.advance(n.conv, n.seq)
        self.signaller.news(items)

    # -- what this node tells ---------------------------------------------------------------------
    async def publish(self, stored: Sequence[tuple[NewMessage, Stored]]) -> None:
        """Cache and announce messages just stored into hot groups (in seq order per group)."""
        per_conv: dict[str, list[tuple[int, bytes]]] = {}
        news: list[News] = []
        for item, result in stored:
            message = result.message
            per_conv.setdefault(message.conv, []).append((message.seq, encode(message)))
            news.append(
                News(
                    conv=message.conv,
                    seq=message.seq,
                    mentions=item.mentions,
                    mention_all=item.mention_all,
                    group_changed=message.type == "system",
                )
            )
        for conv, items in per_conv.items():
            await self.state.append(conv, items)
        await self._announce(_coalesce(news))

    async def group_changed(self, message: Message, push_pull: bool) -> None:
        """A group change (its system message ``message``) was stored: every node drops its roster of the
        group, whatever the group's mode. In a push-pull group the members are signalled of it as well."""
        if push_pull:
            await self.state.append(message.conv, [(message.seq, encode(message))])
        await self._announce([News(conv=message.conv, seq=message.seq, group_changed=True, signal=push_pull)])

    async def _announce(self, items: Sequence[News]) -> None:
        """To every node, this one included (one queue write per node, whatever the group's size)."""
        if items:
            await self.routing.broadcast(encode_news(items))

    async def recalled(self, message: Message) -> None:
        """A recalled group message must not be served from the cache with its old body. Done whether or not
        this node knows the group (it may have just restarted; the cache lives in Redis), and whatever the
        group's mode now (it may have been hot when the message was cached)."""
        await self.changed(message)

    async def changed(self, message: Message) -> None:
        """A cached group message changed (recalled, edited, reacted to): the cache serves it as it is now,
        on every node (the same reasons as ``recalled``)."""
        await self.state.replace(message.conv, message.seq, encode(message))
        self.pulls.refresh(message.conv)

    async def purged(self, conv: str, floor: int) -> None:
        """Retention removed the group's messages up to ``floor``: the cache drops them (for every node: it
        lives in Redis in a cluster) and this node's memo of pulls is stale."""
        await self.state.drop_through(conv, floor)
        self.pulls.refresh(conv)

    # -- pulls ------------------------------------------------------------------------------------
    async def pull(
        self, user_id: int, conv: str, after_seq: int, limit: int
    ) -> tuple[list[bytes], bool] | None:
        """Serve a pull of a hot group from the cache, or None: then the caller reads the database, which
        also authorizes. Only a current roster of a push-pull group, naming the caller, serves here; a caller
        the roster does not name (just invited, say) is left to the database, which knows.

        A group this node heard news of gets its roster read here if it has none (expired, say): one read
        for all the pulls of the moment, where falling back to the database would cost two reads per pull."""
        roster = self.rosters.cached(conv)
        if roster is None and conv in self._push_pull:
            roster = await self.rosters.get(conv)
            if roster is not None and not self.rosters.is_current(conv, roster):
                return None  # changes kept overtaking the read: let the database decide
        if roster is None or not roster.hot:
            return None
        floor = roster.floors.get(user_id)
        if floor is None:
            return None
        return await self.pulls.serve(conv, max(after_seq, floor), limit)

    def close(self) -> None:
        self.signaller.close()

    # -- figures for metrics and benchmarks -------------------------------------------------------
    @property
    def cache_hits(self) -> int:
        return self.pulls.cache_hits

    @property
    def cache_misses(self) -> int:
        return self.pulls.cache_misses


def _coalesce(news: list[News]) -> list[News]:
    """One news per group for a batch: its newest seq, every mention, whether anything changed the group."""
    merged: dict[str, News] = {}
    for n in news:
        prev = merged.get(n.conv)
        if prev is None:
            merged[n.conv] = n
        else:
            merged[n.conv] = News(
                conv=n.conv,
                seq=max(prev.seq, n.seq),
                mentions=tuple(sorted(set(prev.mentions) | set(n.mentions))),
                mention_all=prev.mention_all or n.mention_all,
                group_changed=prev.group_changed or n.group_changed,
            )
    return list(merged.values())
