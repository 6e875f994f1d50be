"""The search indexer's pacing (services/search.py): a backlog is caught up at full speed only while the node
stores nothing; while it sends, one batch per interval."""

from __future__ import annotations

import asyncio
from typing import Any

from hubbub.config import Config
from hubbub.engines.storage.base import IndexProgress
from hubbub.services.search import SearchIndexer


class Backlog:
    """A storage with an endless backlog: every pass indexes a full batch."""

    def __init__(self) -> None:
        self.passes = 0

    async def index_messages(self, batch: int) -> IndexProgress:
        self.passes += 1
        return IndexProgress(indexed=batch, watermark=self.passes * batch, newest=10**9)


async def run_for(seconds: float, activity: Any) -> int:
    storage = Backlog()
    config = Config(search_index_interval_s=0.1, search_index_batch=10)
    indexer = SearchIndexer(config, storage, activity=activity)  # type: ignore[arg-type]
    indexer.start()
    await asyncio.sleep(seconds)
    await indexer.close()
    return storage.passes


async def test_backlog_is_caught_up_at_once_while_quiet_and_paced_while_sending() -> None:
    quiet = await run_for(0.5, lambda: 0)
    sends = iter(range(10**9))
    busy = await run_for(0.5, lambda: next(sends))
    assert busy <= 7  # one pass per 0.1 s interval
    assert quiet > 10 * busy  # back to back
