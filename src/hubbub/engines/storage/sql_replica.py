"""Reading message pages from a PostgreSQL streaming replica, with read-your-writes (docs/architecture.md,
"Read replica"; the ``database_replica`` setting).

A replica replays the primary's WAL a little behind it, but always as a consistent snapshot: if it holds seq
N of a conversation it holds every seq below N that the primary had committed with it (seqs are given out
and inserted in the same transaction). So a page is complete when it reaches what the primary had committed
when the read began: before reading the replica, one primary-key lookup on the primary takes the
conversation's ``max_seq``; a page from the replica that is full, or reaches ``max_seq`` (or the page's
upper bound), is the page the primary would have given. Otherwise, or if the replica does not answer, the
primary serves the page. Hence read-your-writes for the sender, and for anyone: a message acknowledged before
a ``pull``/``history`` began is in its answer, whatever the replica's lag.

What a replica may show late: a recall's blanking of an older message in a ``history`` page that does not
reach the recall notice (the notice itself, a newer seq, is never missed), for the replication lag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Row, Select, select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from hubbub.engines.storage import schema as t

log = logging.getLogger(__name__)

#: Does this page, read from the replica, hold everything the primary had up to ``max_seq``?
Covers = Callable[[Sequence[Row[Any]], int], bool]


class ReplicaReads:
    def __init__(self, url: str) -> None:
        self.engine: AsyncEngine = create_async_engine(
            url, pool_size=10, max_overflow=10, pool_timeout=10, pool_pre_ping=True
        )
        #: Pages served by the replica; pages it could not serve (behind, or down): for tests and metrics.
        self.served = 0
        self.fell_back = 0

    async def page(
        self, primary: AsyncEngine, conv: str, query: Select[Any], covers: Covers
    ) -> list[Row[Any]]:
        c = t.conversations
        async with primary.connect() as conn:
            top = int(await conn.scalar(select(c.c.max_seq).where(c.c.conv == conv)) or 0)
        try:
            async with self.engine.connect() as conn:
                rows = list(await conn.execute(query))
            if covers(rows, top):
                self.served += 1
                return rows
        except (OperationalError, DBAPIError, OSError, ConnectionError) as exc:
            log.warning("read replica unavailable, reading the primary: %s", exc)
        self.fell_back += 1
        async with primary.connect() as conn:
            return list(await conn.execute(query))

    async def close(self) -> None:
        await self.engine.dispose()
