"""The cluster's hot path: a batch of private messages stored in PostgreSQL in two statements.

Through SQLAlchemy a private batch on PostgreSQL costs seven round trips (BEGIN, the duplicate lookup, the
conversations check, the row lock, the seq update, the insert, COMMIT) and building each statement; the
cross-node benchmark found the node spending about three times the CPU of one embedded node per message.
Here, on connections of its own held by plain asyncpg (prepared statements, arrays as parameters):

1. ``_FIND``: the batch's (sender, cmid) keys looked up in ``message_keys`` (migration 0014), one statement;
2. ``_WRITE``: one statement, hence one implicit transaction: lock the conversations in conv order (as every
   writer does), take each conversation's seqs, insert the messages with them (the triggers of migration
   0014 keep ``message_keys``).

What is stored and returned is decided by the same pure planning as the other executors (write_plan.py):
``_WRITE`` numbers a conversation's messages ``top - n + 1 + offset``, exactly as ``plan.number`` does from
the returned tops. A conversation that does not exist yet (its first message) is created, with its two
members, by ``_NEW_CONV`` and ``_NEW_MEMBERS``, and its messages written after. Group messages, which need
the membership rules inside the transaction, and mentions keep the general path; so does any batch this path
fails on (a duplicate stored meanwhile by another node, a value PostgreSQL refuses, a lost connection):
``SqlStorage.store_messages`` hands it to the general path, which retries and tells errors apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from hubbub.core.convs import parse_private
from hubbub.core.models import Message
from hubbub.engines.storage import write_plan as plan
from hubbub.engines.storage.base import NewMessage, Rejected, Stored
from hubbub.engines.storage.sqlutil import json_encode, message_of_values

log = logging.getLogger(__name__)

#: Columns in the order ``message_of_values`` reads them.
_FIND = """
SELECT m.conv, m.seq, m.id, m.sender, m.type, m.body, m.ts, m.cmid, m.recalled
FROM unnest($1::int[], $2::text[]) AS q(sender, cmid)
JOIN message_keys k ON k.sender = q.sender AND k.cmid = q.cmid
JOIN messages m ON m.conv = k.conv AND m.seq = k.seq
"""

# $1..$3: per conversation (conv, count, ts); $4..$11: per message (conv, offset in its conversation, id,
# sender, cmid, type, body, ts). Returns each existing conversation's new top seq.
_WRITE = """
WITH v AS (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]) AS v(conv, n, ts)),
locked AS (
  SELECT c.conv FROM conversations c WHERE c.conv IN (SELECT conv FROM v) ORDER BY c.conv FOR UPDATE
),
bumped AS (
  UPDATE conversations c SET max_seq = c.max_seq + v.n, updated_at = v.ts
  FROM v WHERE c.conv = v.conv AND c.conv IN (SELECT conv FROM locked)
  RETURNING c.conv, c.max_seq, v.n
),
written AS (
  INSERT INTO messages (conv, seq, id, sender, cmid, type, body, ts)
  SELECT m.conv, b.max_seq - b.n + 1 + m.off, m.id, m.sender, m.cmid, m.type, m.body, m.ts
  FROM unnest($4::text[], $5::int[], $6::bigint[], $7::int[], $8::text[], $9::text[], $10::text[], $11::bigint[])
    AS m(conv, off, id, sender, cmid, type, body, ts)
  JOIN bumped b ON b.conv = m.conv
)
SELECT conv, max_seq FROM bumped
"""

_NEW_CONV = """
INSERT INTO conversations (conv, max_seq, updated_at)
SELECT conv, 0, ts FROM unnest($1::text[], $2::bigint[]) AS v(conv, ts) ON CONFLICT DO NOTHING
"""
_NEW_MEMBERS = """
INSERT INTO conv_members (user_id, conv, read_seq, min_seq)
SELECT user_id, conv, 0, 0 FROM unnest($1::int[], $2::text[]) AS v(user_id, conv) ON CONFLICT DO NOTHING
"""

#: What sends this path's batch to the general path instead (which retries and names the error).
FAILURES = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)


class PostgresBatchWriter:
    def __init__(self, dsn: str, connections: int = 4) -> None:
        """``dsn`` is a plain ``postgresql://`` URL; ``connections`` are opened as needed, kept open."""
        self.dsn = dsn
        self._free: asyncio.Queue[asyncpg.Connection] = asyncio.Queue()
        self._opened = 0
        self._limit = connections
        self.queries = 0
        #: Set when the URL cannot be used by asyncpg directly (the general path still can).
        self.disabled = False

    def handles(self, batch: list[NewMessage]) -> bool:
        """Private conversations without mentions (the general path refuses non-canonical ids)."""
        return not self.disabled and all(
            parse_private(m.conv) is not None and not m.mentions and not m.mention_all for m in batch
        )

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        if self._free.empty() and self._opened < self._limit:
            self._opened += 1
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
            except (OSError, TimeoutError):  # the database is down: the general path says so
                self._opened -= 1
                raise
            except Exception as exc:  # refused, or a URL only SQLAlchemy understands: the general path only
                self._opened -= 1
                self.disabled = True
                log.warning("PostgreSQL fast path off, every batch takes the general path: %s", exc)
                raise ConnectionError(str(exc)) from exc
        else:
            conn = await self._free.get()
        try:
            yield conn
        except asyncpg.PostgresError:
            self._free.put_nowait(conn)  # the server refused a statement: the connection is fine
            raise
        except BaseException:
            self._opened -= 1  # its state is unknown: not reused
            conn.terminate()
            raise
        self._free.put_nowait(conn)

    async def store(self, batch: list[NewMessage]) -> list[Stored | Rejected]:
        async with self._connection() as conn:
            existing: dict[plan.Key, Message] = {}
            keys = [(sender, cmid) for sender, cmids in plan.lookups(batch).items() for cmid in cmids]
            rows = await conn.fetch(_FIND, [k[0] for k in keys], [k[1] for k in keys])
            self.queries += 1
            for row in rows:
                existing[(row[3], row[7])] = message_of_values(row)
            fresh, rejected = plan.split(batch, existing)
            per_conv = plan.by_conversation(fresh)
            top = await self._write(conn, per_conv) if per_conv else {}
            missing = {conv: ms for conv, ms in per_conv.items() if conv not in top}
            if missing:  # first messages of these conversations
                await conn.execute(_NEW_CONV, list(missing), [ms[0].ts for ms in missing.values()])
                members = [(uid, conv) for conv, ms in missing.items() for uid in ms[0].members]
                await conn.execute(_NEW_MEMBERS, [m[0] for m in members], [m[1] for m in members])
                self.queries += 2
                top.update(await self._write(conn, missing))
        stored = plan.number(per_conv, top)
        return plan.results(batch, existing, rejected, stored)

    async def _write(self, conn: asyncpg.Connection, per_conv: dict[str, list[NewMessage]]) -> dict[str, int]:
        convs = sorted(per_conv)
        columns: list[list[Any]] = [[] for _ in range(8)]
        for conv in convs:
            for offset, m in enumerate(per_conv[conv]):
                for column, value in zip(
                    columns,
                    (conv, offset, m.id, m.sender, m.cmid, m.type, json_encode(m.body).decode(), m.ts),
                    strict=True,
                ):
                    column.append(value)
        rows = await conn.fetch(
            _WRITE,
            convs,
            [len(per_conv[c]) for c in convs],
            [per_conv[c][-1].ts for c in convs],
            *columns,
        )
        self.queries += 1
        return {row[0]: row[1] for row in rows}

    async def close(self) -> None:
        while not self._free.empty():
            conn = self._free.get_nowait()
            with contextlib.suppress(*FAILURES):
                await conn.close(timeout=2)
        self._opened = 0
