"""Hot groups (push-pull): big or busy groups are not pushed message by message.

A message to a hot group is stored once as usual. Then, instead of one push per member:
1. its encoded JSON goes into a bounded cache of the group's recent messages (``HotState``);
2. one small ``News(conv, seq)`` goes to every node (``Broker.announce``: a queue write per node);
3. each node's ``Signaller`` (gateway/signals.py) coalesces news over a short window and sends a tiny
   ``news`` frame only to its online members whose offset is behind; mentioned members get one at once;
4. clients pull the batch they miss; pulls are served from the cache (then the database), off the read loop.

A node keeps each hot group's roster (member -> the seq they joined after) to authorize pulls and pick signal
targets without a database read per pull; a system message (membership change) drops it. A member removed
on another node may still pull for the milliseconds until that news arrives — what they read was already
theirs to read when it was sent. Docs: docs/architecture.md, "Hot groups".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.broker.base import Broker, News
from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.storage.base import NewMessage, Storage, Stored
from hubbub.protocol.frames import encode

#: Pull results are memoized this long (seconds): members signalled together pull the same range.
_MEMO_S = 1.0
_MEMO_MAX = 4096


class HotGroups:
    def __init__(self, config: Config, storage: Storage, broker: Broker, state: HotState) -> None:
        self.config = config
        self.storage = storage
        self.broker = broker
        self.state = state
        self._rosters: dict[str, dict[int, int]] = {}
        #: The newest seq this node has heard of per hot group (from news).
        self.latest: dict[str, int] = {}
        # conv -> (after_seq, limit) -> (expiry, encoded messages): per group, so news drops only its own.
        self._memo: dict[str, dict[tuple[int, int], tuple[float, list[bytes]]]] = {}
        self._inflight: dict[tuple[str, int, int], asyncio.Future[list[bytes]]] = {}
        #: Counters for metrics and benchmarks.
        self.cache_hits = 0
        self.cache_misses = 0

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
                    system=message.type == "system",
                )
            )
        for conv, items in per_conv.items():
            await self.state.append(conv, items)
        await self.broker.announce(_coalesce(news))

    async def recalled(self, message: Message) -> None:
        """A recalled message must not be served from the cache with its old body."""
        await self.state.replace(message.conv, message.seq, encode(message))
        self.refresh(message.conv)

    async def announce_change(self, message: Message) -> None:
        """A system message (membership/profile change) in a hot group: cache it and tell every node."""
        await self.state.append(message.conv, [(message.seq, encode(message))])
        await self.broker.announce([News(conv=message.conv, seq=message.seq, system=True)])

    # -- rosters ----------------------------------------------------------------------------------
    async def roster(self, conv: str) -> dict[int, int]:
        """member -> the seq they joined after; cached per node until a system message for the group."""
        roster = self._rosters.get(conv)
        if roster is None:
            roster = await self.storage.member_floors(conv)
            self._rosters[conv] = roster
        return roster

    def forget(self, conv: str) -> None:
        """Membership may have changed: reload the roster before the next signal or pull."""
        self._rosters.pop(conv, None)
        self.refresh(conv)

    def advance(self, conv: str, seq: int) -> None:
        """News up to ``seq``: remember the newest seq, and memoized pulls of the group are stale."""
        if seq > self.latest.get(conv, 0):
            self.latest[conv] = seq
        self.refresh(conv)

    def refresh(self, conv: str) -> None:
        """New messages: memoized pull results of the group are stale."""
        self._memo.pop(conv, None)

    def knows(self, conv: str) -> bool:
        """Is this a hot group this node has seen news of (so its roster is cached)?"""
        return conv in self._rosters

    async def _load(self, key: tuple[str, int, int]) -> list[bytes]:
        conv, after_seq, limit = key
        found = await self.state.recent(conv, after_seq, limit + 1)
        if found is not None and (
            len(found) > limit or not await self._newer_exists(conv, after_seq + len(found))
        ):
            self.cache_hits += 1
        else:
            self.cache_misses += 1
            messages = await self.storage.messages_after(conv, after_seq, limit + 1)
            found = [encode(m) for m in messages]
            await self.state.append(conv, [(m.seq, data) for m, data in zip(messages, found, strict=True)])
        memo = self._memo.setdefault(conv, {})
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[(after_seq, limit)] = (time.monotonic() + _MEMO_S, found)
        return found

    async def _newer_exists(self, conv: str, seq: int) -> bool:
        """Is there a message after ``seq`` the cache did not return (a hole in the cache, or not cached)?"""
        return seq < self.latest.get(conv, 0)

    def is_hot(self, member_count: int, marked: bool) -> bool:
        return marked or member_count >= self.config.hot_group_threshold

    # -- pulls ------------------------------------------------------------------------------------
    async def pull(self, user_id: int, conv: str, after_seq: int, limit: int) -> tuple[list[bytes], bool]:
        """Encoded messages after ``after_seq``: from the cache, else from the database (and then cached).

        Members signalled in the same window pull the same range at the same moment, so one read — of the
        cache or, for a range it does not hold, of the database — serves them all (a single flight, then a
        memo for a second). Authorized against the node's roster: no database read per pull.
        """
        roster = await self.roster(conv)
        if user_id not in roster:
            raise HubbubError(Code.FORBIDDEN, "you are not a member of this group")
        key = (conv, max(after_seq, roster[user_id]), limit)
        memo = self._memo.get(conv, {}).get(key[1:])
        if memo is not None and memo[0] > time.monotonic():
            found = memo[1]
        else:
            flight = self._inflight.get(key)
            if flight is None:
                flight = asyncio.ensure_future(self._load(key))
                self._inflight[key] = flight
                flight.add_done_callback(lambda _f: self._inflight.pop(key, None))
            found = await asyncio.shield(flight)
        return found[:limit], len(found) > limit


def _coalesce(news: list[News]) -> list[News]:
    """One news per group for a batch: its newest seq, every mention, whether anything was a system change."""
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
                system=prev.system or n.system,
            )
    return list(merged.values())
