"""Online status, derived from the connection registry and pushed to friends when it changes.

Issue 15: a user may hold several sessions (devices, tabs); the registry's slots are per device, presence
shows terminal classes, and a login past ``max_sessions_per_user`` evicts the idlest session (4410). Going
offline records the last seen; a user's presence never reaches those they block.
"""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.core.clock import now_ms
from hubbub.engines.registry.base import Registered, Registry, terminals_of
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.protocol.close_codes import Close
from hubbub.services import pushes
from hubbub.services.social_rules import last_seen_visible


class PresenceService:
    def __init__(self, storage: Storage, registry: Registry, routing: Routing, max_sessions: int = 0) -> None:
        self.storage = storage
        self.registry = registry
        self.routing = routing
        #: Live connections a user may hold across the cluster (0: no cap).
        self.max_sessions = max_sessions

    async def connected(self, user_id: int, slot: str, conn_id: str) -> None:
        """Take the slot (``registry.slot_of``). The connection it replaces, on any node, is sent its 4409
        before this returns (and so before the new one hears ``auth_ok``); those evicted to keep the user
        within the cap, their 4410."""
        change = await self.registry.register(user_id, slot, conn_id, cap=self.max_sessions)
        if (old := change.replaced) is not None:
            await self.routing.disconnect(
                user_id, Close.REPLACED, "replaced by a newer login", conn_id=old.conn_id, node=old.node
            )
        for gone in change.evicted:
            await self.routing.disconnect(
                user_id,
                Close.EVICTED,
                "signed in on too many devices; this was the idlest session",
                conn_id=gone.conn_id,
                node=gone.node,
            )
        await self._announce(user_id, change)

    async def disconnected(self, user_id: int, slot: str, conn_id: str) -> None:
        change = await self.registry.unregister(user_id, slot, conn_id)
        if change is not None:
            await self._announce(user_id, change)

    def active(self, user_id: int, slot: str, conn_id: str) -> None:
        """The connection did something (a frame other than ``ping``): it is the last to be evicted. No I/O
        (called for every frame): the registry records it here and sends it on in its upkeep."""
        self.registry.touch(user_id, slot, conn_id)

    async def online(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """Online terminal classes per user (never device ids)."""
        found = await self.registry.presence(user_ids)
        return {uid: terminals_of(slots) for uid, slots in found.items()}

    async def _announce(self, user_id: int, change: Registered) -> None:
        before, after = terminals_of(change.before), terminals_of(change.after)
        if before == after:
            return
        last_seen = None
        if not after:
            last_seen = now_ms()
            await self.storage.set_last_seen(user_id, last_seen)
            social = (await self.storage.social([user_id]))[user_id]
            if not last_seen_visible(social.privacy, friends=True, blocked=False):
                last_seen = None
        friends = await self.storage.friend_ids(user_id)
        if friends:
            hidden = {u.id for u, _ in await self.storage.blocks(user_id)}
            audience = [f for f in friends if f not in hidden]
            if audience:
                await self.routing.publish([pushes.presence(user_id, after, audience, last_seen)])
