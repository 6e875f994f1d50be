"""Claim-with-lease: the one way a table's rows are handed to one node at a time, on SQLite and PostgreSQL.

Web Push's outbox (``sql_push.py``) and outgoing webhooks (``sql_integrations.py``) both need "this row is
mine until then, and nobody else's meanwhile"; they used to write it twice, with two ideas of when a lease is
over. Here, once:

- A row's lease is two columns, an owner string and ``until`` (ms). It is **free** once ``until <= now``: a
  lease taken at ``now`` for ``lease_ms`` is over at exactly ``now + lease_ms``.
- ``claim`` leases up to ``limit`` rows that match ``due`` and are free (with ``renew``, also the rows the
  claimant already holds, which extends them), first by ``order_by``, in one statement:
  ``UPDATE … WHERE key IN (SELECT key … ORDER BY … LIMIT … FOR UPDATE SKIP LOCKED) RETURNING …``. On PostgreSQL
  the ``SKIP LOCKED`` lets nodes that claim at once take disjoint rows without waiting on each other; SQLite
  has one writer, which serializes the claims (its dialect drops the locking clause).
- The holder proves it holds a row with ``held`` in the ``WHERE`` of whatever it writes, so a node whose lease
  ran out cannot overwrite its successor's work; ``release`` frees an owner's rows (a node that stops).

The contract is tests/contract/test_leases.py, on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, or_, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Leased:
    """Where a table keeps its rows' leases: the key that names a row, the owner and until columns."""

    table: Table
    key: tuple[str, ...]
    owner: str = "lease_owner"
    until: str = "lease_until"

    def held(self, owner: str) -> ColumnElement[bool]:
        """The rows ``owner`` holds (whether or not the lease has run out: a successor's claim changes it)."""
        return self.table.c[self.owner] == owner

    def free(self, now: int) -> ColumnElement[bool]:
        return self.table.c[self.until] <= now


async def claim(
    conn: AsyncConnection,
    leased: Leased,
    *,
    owner: str,
    now: int,
    lease_ms: int,
    due: Sequence[ColumnElement[bool]] = (),
    order_by: Sequence[Any] = (),
    limit: int = 1,
    returning: Sequence[Any] = (),
    renew: bool = False,
) -> list[Row[Any]]:
    """Lease up to ``limit`` due rows to ``owner`` until ``now + lease_ms``; the rows claimed, as ``returning``
    (the whole row when empty) reads them after the claim. Run it in a write transaction (``_tx``)."""
    table = leased.table
    available = or_(leased.free(now), leased.held(owner)) if renew else leased.free(now)
    keys = [table.c[name] for name in leased.key]
    pick = select(*keys).where(*due, available).order_by(*order_by).limit(limit)
    pick = pick.with_for_update(skip_locked=True)
    chosen = keys[0].in_(pick) if len(keys) == 1 else tuple_(*keys).in_(pick)
    stmt = (
        update(table)
        .where(chosen)
        .values({leased.owner: owner, leased.until: now + lease_ms})
        .returning(*(returning or table.c))
    )
    return list(await conn.execute(stmt))


async def release(conn: AsyncConnection, leased: Leased, owner: str, *where: ColumnElement[bool]) -> int:
    """Free the rows ``owner`` holds (those matching ``where`` too); how many."""
    stmt = (
        update(leased.table)
        .where(and_(leased.held(owner), *where))
        .values({leased.owner: "", leased.until: 0})
    )
    return int((await conn.execute(stmt)).rowcount)
