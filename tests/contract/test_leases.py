"""The claim-with-lease contract (engines/storage/leases.py), on SQLite and a real PostgreSQL.

Web Push's outbox and outgoing webhooks both claim through it (their own contracts, test_push_storage.py and
test_integrations_storage.py, check what they build on it); here it runs on a table of its own, keyed by one
column (as webhooks are) and by two (as the outbox is)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, insert, select, update

from hubbub.engines.storage import leases
from hubbub.engines.storage.sql import SqlStorage
from tests.contract import test_storage as storage_contract
from tests.contract.test_storage import NOW, MakeStorage

make_storage = storage_contract.make_storage
#: Leases never touch the message writers, so the storage suite's "-general-path" variants add nothing here.
pytestmark = pytest.mark.parametrize("make_storage", ["sqlite", "postgresql"], indirect=True)

_meta = MetaData()
probe = Table(
    "lease_probe",
    _meta,
    Column("grp", String(8), primary_key=True),
    Column("id", Integer, primary_key=True),
    Column("due_at", BigInteger, nullable=False),
    Column("note", String(16), nullable=False, server_default=""),
    Column("lease_owner", String(32), nullable=False, server_default=""),
    Column("lease_until", BigInteger, nullable=False, server_default="0"),
)
KEYS = {"one-column key": ("id",), "two-column key": ("grp", "id")}


@pytest.fixture(params=list(KEYS))
def leased(request: pytest.FixtureRequest) -> leases.Leased:
    return leases.Leased(probe, key=KEYS[request.param])


async def _rows(make_storage: MakeStorage, count: int) -> SqlStorage:
    """A storage whose database holds ``count`` probe rows, row n due at NOW + n."""
    storage = await make_storage()
    async with storage._tx() as conn:
        await conn.run_sync(_meta.create_all)
        await conn.execute(insert(probe), [{"grp": "g", "id": n, "due_at": NOW + n} for n in range(count)])
    return storage


async def _claim(
    storage: SqlStorage,
    leased: leases.Leased,
    owner: str,
    now: int,
    *,
    limit: int = 10,
    renew: bool = False,
    lease_ms: int = 1000,
) -> list[int]:
    """The ids ``owner`` claims at ``now`` (checking each came back leased to it until now + lease_ms)."""
    async with storage._tx() as conn:
        rows = await leases.claim(
            conn,
            leased,
            owner=owner,
            now=now,
            lease_ms=lease_ms,
            due=[probe.c.due_at <= now],
            order_by=[probe.c.due_at],
            limit=limit,
            returning=[probe.c.id, probe.c.lease_owner, probe.c.lease_until],
            renew=renew,
        )
    assert all(r.lease_owner == owner and r.lease_until == now + lease_ms for r in rows)
    return sorted(r.id for r in rows)


async def test_a_claim_takes_the_due_free_rows_oldest_first(
    make_storage: MakeStorage, leased: leases.Leased
) -> None:
    storage = await _rows(make_storage, 6)
    assert await _claim(storage, leased, "a", NOW + 3, limit=2) == [0, 1]  # oldest first, at most limit
    assert await _claim(storage, leased, "b", NOW + 3) == [2, 3]  # not 4, 5: not due yet
    assert await _claim(storage, leased, "c", NOW + 3) == []
    async with storage._tx() as conn:  # without ``returning``, the whole row comes back
        whole = await leases.claim(conn, leased, owner="d", now=NOW + 9, lease_ms=5, limit=9)
    assert sorted(r.id for r in whole) == [4, 5] and {r.note for r in whole} == {""}


async def test_a_lease_is_its_holders_until_its_time_is_up(
    make_storage: MakeStorage, leased: leases.Leased
) -> None:
    storage = await _rows(make_storage, 2)
    assert await _claim(storage, leased, "a", NOW + 1) == [0, 1]
    assert await _claim(storage, leased, "b", NOW + 1000) == []  # until NOW + 1001
    assert await _claim(storage, leased, "a", NOW + 1000) == []  # without renew, not even its holder's
    assert await _claim(storage, leased, "a", NOW + 1000, renew=True) == [0, 1]  # extended to NOW + 2000
    assert await _claim(storage, leased, "b", NOW + 1999) == []
    assert await _claim(storage, leased, "b", NOW + 2000) == [0, 1]  # free at exactly its end


async def test_only_the_holder_writes_and_release_frees_its_rows(
    make_storage: MakeStorage, leased: leases.Leased
) -> None:
    storage = await _rows(make_storage, 3)
    assert await _claim(storage, leased, "a", NOW + 2) == [0, 1, 2]
    assert await _claim(storage, leased, "b", NOW + 5000, limit=1) == [0]  # a's lease ran out
    async with storage._tx() as conn:
        mine = update(probe).values(note="done")
        assert (await conn.execute(mine.where(leased.held("a"), probe.c.id == 0))).rowcount == 0
        assert (await conn.execute(mine.where(leased.held("b"), probe.c.id == 0))).rowcount == 1
        assert await leases.release(conn, leased, "a", probe.c.id == 1) == 1
        assert await leases.release(conn, leased, "a") == 1  # row 2; row 0 is b's
    async with storage.engine.connect() as conn:
        owners = {r.id: r.lease_owner for r in await conn.execute(select(probe.c.id, probe.c.lease_owner))}
    assert owners == {0: "b", 1: "", 2: ""}
    assert await _claim(storage, leased, "c", NOW + 5000) == [1, 2]  # released: free at once


async def test_nodes_claiming_at_once_take_disjoint_rows(
    make_storage: MakeStorage, leased: leases.Leased
) -> None:
    one = await _rows(make_storage, 40)
    two = await make_storage()
    got = await asyncio.gather(
        *(_claim(s, leased, owner, NOW + 40, limit=7) for s, owner in [(one, "a"), (two, "b")] * 4)
    )
    ids = [i for claimed in got for i in claimed]
    assert len(ids) == len(set(ids)) == 40


async def test_a_claim_skips_rows_another_transaction_holds(
    make_storage: MakeStorage, leased: leases.Leased
) -> None:
    """PostgreSQL only (SQLite has one writer, so there is no second transaction to skip past)."""
    one = await _rows(make_storage, 4)
    if one.dialect != "postgresql":
        pytest.skip("SQLite serializes writers")
    two = await make_storage()
    async with one._tx() as held:
        await held.execute(select(probe.c.id).where(probe.c.id < 2).with_for_update())
        # Rows 0 and 1 are locked and not yet leased: the claim takes 2 and 3 without waiting.
        assert await asyncio.wait_for(_claim(two, leased, "b", NOW + 4), 5) == [2, 3]
