"""Online status, derived from the connection registry and pushed to friends when it changes."""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.engines.registry.base import Registered, Registry
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.protocol.close_codes import Close
from hubbub.services import pushes


class PresenceService:
    def __init__(self, storage: Storage, registry: Registry, routing: Routing) -> None:
        self.storage = storage
        self.registry = registry
        self.routing = routing

    async def connected(self, user_id: int, terminal: str, conn_id: str) -> None:
        """Take the terminal's slot. The connection it replaces, on any node, is sent its 4409 before this
        returns (and so before the new one hears ``auth_ok``)."""
        change = await self.registry.register(user_id, terminal, conn_id)
        if (old := change.replaced) is not None:
            await self.routing.disconnect(
                user_id, Close.REPLACED, "replaced by a newer login", conn_id=old.conn_id, node=old.node
            )
        await self._announce(user_id, change)

    async def disconnected(self, user_id: int, terminal: str, conn_id: str) -> None:
        change = await self.registry.unregister(user_id, terminal, conn_id)
        if change is not None:
            await self._announce(user_id, change)

    async def online(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        return await self.registry.presence(user_ids)

    async def _announce(self, user_id: int, change: Registered) -> None:
        if change.before == change.after:
            return
        friends = await self.storage.friend_ids(user_id)
        if friends:
            await self.routing.publish([pushes.presence(user_id, change.after, friends)])
