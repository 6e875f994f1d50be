"""Message pages from a real PostgreSQL streaming replica (issue 19; engines/storage/sql_replica.py): pull and
history are served by the replica once it has caught up, and by the primary for a page the replica lags
behind, so what was acknowledged before a read is always in it (read-your-writes, for the sender first)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from hubbub.core.convs import private_conv
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.engines.storage.sql import SqlStorage
from hubbub.engines.storage.sql_replica import ReplicaReads
from tests import servers

_ids = MessageIds("r")
NOW = 1_700_000_000_000

Pair = tuple[servers.PostgresServer, servers.PostgresReplica]


def _sqla(url: str) -> str:
    return "postgresql+asyncpg://" + url.split("://", 1)[1]


@pytest.fixture
async def storage(postgres_replica: Pair) -> AsyncIterator[SqlStorage]:
    primary, replica = postgres_replica
    url = primary.create_database("replica")
    name = url.rsplit("/", 1)[1]
    storage = SqlStorage(_sqla(url), replica_url=_sqla(replica.url(name)))
    await storage.start()
    replica.caught_up()
    yield storage
    replica.resume()
    await storage.close()


async def _send(storage: SqlStorage, conv: str, sender: int, cmid: str) -> int:
    members = tuple(int(x) for x in conv.split(":")[1:])
    message = NewMessage(
        id=_ids.next(), conv=conv, sender=sender, cmid=cmid, type="text", body={"text": cmid}, ts=NOW,
        members=members,
    )  # fmt: skip
    (stored,) = await storage.store_messages([message])
    assert isinstance(stored, Stored)
    return stored.message.seq


def _replica(storage: SqlStorage) -> ReplicaReads:
    assert storage.replica is not None
    return storage.replica


async def test_pages_come_from_the_replica_once_it_caught_up(
    storage: SqlStorage, postgres_replica: Pair
) -> None:
    conv = private_conv(1, 2)
    for n in range(5):
        await _send(storage, conv, 1 + n % 2, f"m{n}")
    postgres_replica[1].caught_up()
    reads = _replica(storage)
    assert [m.seq for m in await storage.messages_after(conv, 0, 10)] == [1, 2, 3, 4, 5]
    assert [m.seq for m in await storage.messages_after(conv, 2, 2)] == [3, 4]
    assert [m.seq for m in await storage.messages_before(conv, 5, 2, 0)] == [3, 4]
    assert [m.seq for m in await storage.messages_before(conv, 2**62, 10, 3)] == [4, 5]
    assert await storage.messages_after(conv, 5, 10) == []
    assert (reads.served, reads.fell_back) == (5, 0)


async def test_a_lagging_replica_never_hides_an_acknowledged_message(
    storage: SqlStorage, postgres_replica: Pair
) -> None:
    replica = postgres_replica[1]
    conv = private_conv(3, 4)
    await _send(storage, conv, 3, "before")
    replica.caught_up()
    replica.pause()  # from here the replica lags as long as the test wants
    seq = await _send(storage, conv, 3, "mine")  # acknowledged to the sender
    reads = _replica(storage)
    # the sender pulls, or opens the history, at once: its message is there (from the primary)
    assert [m.body for m in await storage.messages_after(conv, 0, 10)] == [
        {"text": "before"},
        {"text": "mine"},
    ]
    assert [m.seq for m in await storage.messages_before(conv, 2**62, 10, 0)] == [1, seq]
    assert reads.fell_back == 2
    # a page the lagging replica does hold in full is still served by it
    assert [m.seq for m in await storage.messages_before(conv, 2, 10, 0)] == [1]
    assert reads.served == 1
    replica.resume()
    replica.caught_up()
    served = reads.served
    assert [m.seq for m in await storage.messages_after(conv, 0, 10)] == [1, seq]
    assert reads.served == served + 1


async def test_a_replica_that_does_not_answer_leaves_reads_to_the_primary(storage: SqlStorage) -> None:
    conv = private_conv(5, 6)
    await _send(storage, conv, 5, "x")
    reads = _replica(storage)
    await reads.engine.dispose()
    reads.engine = SqlStorage(f"postgresql+asyncpg://postgres@127.0.0.1:{servers.free_port()}/none").engine
    started = time.monotonic()
    assert [m.seq for m in await storage.messages_after(conv, 0, 10)] == [1]
    assert reads.fell_back == 1 and time.monotonic() - started < 5
