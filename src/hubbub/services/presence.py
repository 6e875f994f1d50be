"""Online status, derived from the broker's registry and pushed to friends when it changes."""

from __future__ import annotations

from collections.abc import Sequence

from hubbub.engines.broker.base import Broker, Registered
from hubbub.engines.storage.base import Storage
from hubbub.services import pushes


class PresenceService:
    def __init__(self, storage: Storage, broker: Broker) -> None:
        self.storage = storage
        self.broker = broker

    async def connected(self, user_id: int, terminal: str, conn_id: str) -> None:
        await self._announce(user_id, await self.broker.register(user_id, terminal, conn_id))

    async def disconnected(self, user_id: int, terminal: str, conn_id: str) -> None:
        change = await self.broker.unregister(user_id, terminal, conn_id)
        if change is not None:
            await self._announce(user_id, change)

    async def online(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        return await self.broker.presence(user_ids)

    async def _announce(self, user_id: int, change: Registered) -> None:
        if change.before == change.after:
            return
        friends = await self.storage.friend_ids(user_id)
        if friends:
            await self.broker.publish([pushes.presence(user_id, change.after, friends)])
