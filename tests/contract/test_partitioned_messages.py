"""PostgreSQL's ``messages`` partitioned by conversation hash (migration 0014, issue 19): the migration carries
existing messages over, and afterwards one conversation lives in one partition while idempotency stays global
across conversations (``message_keys``). The storage contract itself runs on the partitioned table in
test_storage.py."""

from __future__ import annotations

import importlib

import msgspec
from sqlalchemy.ext.asyncio import create_async_engine

from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.engines.storage.sql import SqlStorage
from hubbub.migrations.runner import upgrade
from tests import servers

_migration = importlib.import_module("hubbub.migrations.versions.0014_partitioning")
_ids = MessageIds("t")
NOW = 1_700_000_000_000


def _row(conv: str, seq: int, sender: int, cmid: str) -> str:
    return f"('{conv}', {seq}, {_ids.next()}, {sender}, '{cmid}', 'text', '{{\"text\":\"x\"}}', {NOW}, false)"


async def test_migration_partitions_existing_messages(postgres_server: servers.PostgresServer) -> None:
    url = postgres_server.create_database()
    name = url.rsplit("/", 1)[1]
    sqla = "postgresql+asyncpg://" + url.split("://", 1)[1]
    engine = create_async_engine(sqla)
    async with engine.begin() as conn:
        await conn.run_sync(upgrade, _migration.down_revision)  # the schema just before partitioning
    postgres_server.psql(
        "INSERT INTO conversations (conv, max_seq, updated_at) VALUES "
        + ", ".join(f"('p:1:{n}', 2, {NOW})" for n in range(2, 42)),
        name,
    )
    rows = [_row(f"p:1:{n}", seq, 1, f"c{n}-{seq}") for n in range(2, 42) for seq in (1, 2)]
    postgres_server.psql(
        "INSERT INTO messages (conv, seq, id, sender, cmid, type, body, ts, recalled) VALUES "
        + ", ".join(rows),
        name,
    )
    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
    await engine.dispose()

    assert (
        postgres_server.psql("SELECT relkind FROM pg_class WHERE relname = 'messages'", name).strip() == "p"
    )
    parts = postgres_server.psql(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass", name
    )
    assert int(parts) == _migration.PARTITIONS
    assert int(postgres_server.psql("SELECT count(*) FROM messages", name)) == 80
    assert int(postgres_server.psql("SELECT count(*) FROM message_keys", name)) == 80
    # one conversation, one partition
    spread = postgres_server.psql(
        "SELECT max(n) FROM (SELECT count(DISTINCT tableoid) AS n FROM messages GROUP BY conv) x", name
    )
    assert int(spread) == 1
    used = postgres_server.psql("SELECT count(DISTINCT tableoid) FROM messages", name)
    assert int(used) > 1

    storage = SqlStorage(sqla)
    try:
        # a resend of a migrated message, even naming another conversation, is the migrated message
        again = NewMessage(id=_ids.next(), conv="p:1:7", sender=1, cmid="c3-2", type="text", body={}, ts=NOW)
        (stored,) = await storage.store_messages([again])
        assert stored.duplicate and (stored.message.conv, stored.message.seq) == ("p:1:3", 2)
        fresh = NewMessage(id=_ids.next(), conv="p:1:3", sender=1, cmid="new", type="text", body={}, ts=NOW)
        (added,) = await storage.store_messages([fresh])
        assert isinstance(added, Stored), added
        assert not added.duplicate and added.message.seq == 3
        # the search indexer's order carries on from the migrated rows
        rids = postgres_server.psql("SELECT rid FROM messages ORDER BY rid DESC LIMIT 2", name).split()
        assert int(rids[0]) > int(rids[1])
        # purging a conversation drops its keys with its rows: its cmids may be sent again
        purged = await storage.purge_through("p:1:3", 3, 100)
        assert purged.deleted == 3
        assert int(postgres_server.psql("SELECT count(*) FROM message_keys WHERE conv = 'p:1:3'", name)) == 0
        (resent,) = await storage.store_messages(
            [msgspec.structs.replace(fresh, id=_ids.next(), conv="p:1:4")]
        )
        assert not resent.duplicate and (resent.message.conv, resent.message.seq) == ("p:1:4", 3)
    finally:
        await storage.close()
