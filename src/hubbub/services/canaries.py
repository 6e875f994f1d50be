"""Which accounts are the delivery canary's (hubbub/proof/canary.py), as this node knows them.

Product metrics (messages stored, connections, online users) must describe people, not the synthetic traffic
that checks delivery around the clock: a canary sending a message a second would otherwise be most of a
small server's figures. The set is tiny, so each node holds it in memory and the hot paths pay one set lookup;
it is reloaded every ``canary_refresh_s`` (marks made on another node arrive then) and at once on the node
that marks an account.
"""

from __future__ import annotations

from collections.abc import Iterator

from hubbub.config import Config
from hubbub.core.errors import HubbubError
from hubbub.core.periodic import Periodic
from hubbub.engines.storage.base import Storage


class Canaries:
    def __init__(self, config: Config, storage: Storage) -> None:
        self.storage = storage
        self.ids: frozenset[int] = frozenset()
        self._refresher = Periodic(
            "canary-accounts", config.canary_refresh_s, self.refresh, jitter=0.2, quiet=(HubbubError,)
        )

    def __contains__(self, user_id: object) -> bool:
        return user_id in self.ids

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)

    async def refresh(self) -> None:
        self.ids = frozenset(await self.storage.canary_user_ids())

    async def start(self) -> None:
        """Load the set, then keep it fresh; a database that is down now leaves it empty until the next run."""
        try:
            await self.refresh()
        except HubbubError:  # storage unavailable
            pass
        self._refresher.start()

    async def close(self) -> None:
        await self._refresher.stop()
