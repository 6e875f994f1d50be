"""This node's copy of hot groups' member lists: who may pull, and whom to signal, without a read per pull.

The database is the one authority on membership; a roster is a cache of it, and a cache is only as good as
its invalidation. Three rules keep it current:

1. **Every group change drops it on every node.** Each change to any group (membership, roles, the ``hot``
   flag, dismissal) is announced to every node as ``News(group_changed=True)``, hot group or not: a group
   that just stopped being hot, or whose roster a node read while it was, is dropped like any other.
   The node that made the change drops its own copy synchronously, before the change is acknowledged.
2. **A load that raced a change is not kept.** Each drop bumps the group's generation; a load that started
   before the drop finishes into a newer generation and is discarded, so a roster read just before a kick
   cannot be installed after it.
3. **Nothing is kept long.** News travels at most once (``Routing.broadcast``): should a drop be lost (Redis
   restarting), the roster is still reloaded ``ttl_s`` after it was read. That bounds how stale a roster can
   be on a node that missed a change; normally it is the milliseconds the news takes.

A roster also records whether the group was push-pull when read (``HotPolicy``): pulls use a roster only for
a group that is hot, and every other group is authorized by the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from hubbub.core.convs import parse_group
from hubbub.engines.storage.base import Storage
from hubbub.services.hot.policy import HotPolicy

#: How long a roster is trusted without news of a change (seconds). Long enough that a busy hot group is
#: re-read rarely (one read of its member list per node per period), short enough that a node which missed
#: the news of a kick stops serving the kicked member soon after.
ROSTER_TTL_S = 2.0


class Roster:
    """A hot group's members as this node last read them."""

    __slots__ = ("floors", "hot", "read_at")

    def __init__(self, hot: bool, floors: dict[int, int], read_at: float) -> None:
        #: Push-pull when read (the policy applied to the flag and member count read with it).
        self.hot = hot
        #: member -> the seq they joined after (they may read only what follows it).
        self.floors = floors
        self.read_at = read_at


class Rosters:
    def __init__(
        self,
        storage: Storage,
        policy: HotPolicy,
        clock: Callable[[], float],
        ttl_s: float = ROSTER_TTL_S,
    ) -> None:
        self.storage = storage
        self.policy = policy
        self.clock = clock
        self.ttl_s = ttl_s
        self._rosters: dict[str, Roster] = {}
        self._generation: dict[str, int] = {}
        self._loading: dict[str, asyncio.Future[Roster | None]] = {}
        #: Reads of member lists, for tests and benchmarks.
        self.loads = 0

    def cached(self, conv: str) -> Roster | None:
        """The roster if this node holds a fresh one (no database read)."""
        roster = self._rosters.get(conv)
        if roster is None:
            return None
        if self.clock() - roster.read_at >= self.ttl_s:
            del self._rosters[conv]
            return None
        return roster

    async def get(self, conv: str) -> Roster | None:
        """The fresh roster, read from the database if need be (one read for all callers); None if the group
        does not exist. A read that a change overtook is read again; should changes keep overtaking it, the
        last read is returned but not kept (``is_current`` tells)."""
        roster = self.cached(conv)
        if roster is not None:
            return roster
        for _ in range(3):
            loading = self._loading.get(conv)
            if loading is None:
                loading = asyncio.ensure_future(self._load(conv))
                self._loading[conv] = loading
                loading.add_done_callback(lambda done: self._loaded(conv, done))
            roster = await asyncio.shield(loading)
            if roster is None or self.is_current(conv, roster):
                return roster
        return roster

    def is_current(self, conv: str, roster: Roster) -> bool:
        """Is this the roster kept for the group (not one a change made stale)?"""
        return self._rosters.get(conv) is roster

    def _loaded(self, conv: str, done: asyncio.Future[Roster | None]) -> None:
        if self._loading.get(conv) is done:  # not a newer load that started after a ``forget``
            del self._loading[conv]

    def forget(self, conv: str) -> None:
        """The group changed: drop the roster, and any load still in flight is not kept."""
        self._rosters.pop(conv, None)
        self._generation[conv] = self._generation.get(conv, 0) + 1
        self._loading.pop(conv, None)

    async def _load(self, conv: str) -> Roster | None:
        group_id = parse_group(conv)
        if group_id is None:
            return None
        generation = self._generation.get(conv, 0)
        read_at = self.clock()
        # Members first, then the group: a change committed between the two shows in the group's facts and
        # its news bumps the generation, so the pair is discarded below.
        floors = await self.storage.member_floors(conv)
        group = await self.storage.group(group_id)
        self.loads += 1
        if group is None:
            return None
        roster = Roster(self.policy.group_is_hot(group), floors, read_at)
        if self._generation.get(conv, 0) == generation:
            self._rosters[conv] = roster
        return roster
