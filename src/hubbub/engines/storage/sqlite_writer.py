"""The embedded default's hot path: a batch of private messages stored in one call on one thread.

Through aiosqlite and SQLAlchemy a batch costs ~26 thread hops (one per statement) plus building each
statement; the 1:1 benchmark found that to be half the server's time. Here the whole transaction is one
function on a dedicated thread with its own connection and plain SQL: one hop per batch. What it stores
and returns is decided by the same pure planning as ``SqlStorage._store_messages`` (write_plan.py); only the
statements differ (the contract tests run both paths). Group messages, which need the membership rules
inside the transaction, keep the general path.

SQLite allows one writer at a time: this connection and the engine's writer take turns through BEGIN
IMMEDIATE and the busy timeout, as two processes would.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hubbub.core.convs import parse_private
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.storage import write_plan as plan
from hubbub.engines.storage.base import NewMessage, Rejected, Stored
from hubbub.engines.storage.sqlutil import json_encode, message_of_values

#: Columns in the order ``message_of_values`` reads them.
_FIND = (
    "SELECT conv, seq, id, sender, type, body, ts, cmid, recalled FROM messages WHERE sender = ? AND cmid = ?"
)
_BUMP = "UPDATE conversations SET max_seq = max_seq + ?, updated_at = ? WHERE conv = ? RETURNING max_seq"
_NEW_CONV = "INSERT INTO conversations (conv, max_seq, updated_at) VALUES (?, ?, ?)"
_NEW_MEMBER = "INSERT OR IGNORE INTO conv_members (user_id, conv, read_seq, min_seq, mention_seq) VALUES (?, ?, 0, 0, 0)"
_INSERT = (
    "INSERT INTO messages (conv, seq, id, sender, cmid, type, body, ts, recalled) VALUES (?,?,?,?,?,?,?,?,0)"
)


class SqliteBatchWriter:
    def __init__(self, path: str) -> None:
        self.path = path
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="hubbub-sqlite-writer")
        self._db: sqlite3.Connection | None = None
        self.queries = 0

    @staticmethod
    def handles(batch: list[NewMessage]) -> bool:
        """Private conversations only, in their canonical spelling (the general path refuses the others)."""
        return all(parse_private(m.conv) is not None for m in batch)

    async def store(self, batch: list[NewMessage]) -> list[Stored | Rejected]:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._store, batch)
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full, I/O error
            raise HubbubError(Code.UNAVAILABLE, "storage is unavailable, nothing was stored") from exc

    def close(self) -> None:
        self._thread.submit(self._close).result()
        self._thread.shutdown()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=5000"):
                db.execute(f"PRAGMA {pragma}")
            self._db = db
        return self._db

    def _store(self, batch: list[NewMessage]) -> list[Stored | Rejected]:
        """Execute the batch's plan (write_plan.py) in raw SQL: the same decisions as the general path."""
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        queries = 2
        try:
            existing: dict[plan.Key, Message] = {}
            for sender, cmids in plan.lookups(batch).items():
                for cmid in cmids:
                    queries += 1
                    row = db.execute(_FIND, (sender, cmid)).fetchone()
                    if row is not None:
                        existing[(sender, cmid)] = message_of_values(row)
            fresh, rejected = plan.split(batch, existing)
            per_conv = plan.by_conversation(fresh)
            top: dict[str, int] = {}
            for conv, ms in per_conv.items():
                queries += 1
                top_row = db.execute(_BUMP, (len(ms), ms[-1].ts, conv)).fetchone()
                if top_row is None:
                    queries += 2
                    db.execute(_NEW_CONV, (conv, len(ms), ms[-1].ts))
                    db.executemany(_NEW_MEMBER, [(uid, conv) for uid in ms[0].members])
                    top[conv] = len(ms)
                else:
                    top[conv] = int(top_row[0])
            stored = plan.number(per_conv, top)
            if stored:
                queries += 1
                rows = []
                for ms in per_conv.values():
                    for m in ms:
                        seq = stored[(m.sender, m.cmid)].seq
                        rows.append((m.conv, seq, m.id, m.sender, m.cmid, m.type, _json(m.body), m.ts))
                db.executemany(_INSERT, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self.queries += queries
        return plan.results(batch, existing, rejected, stored)


def _json(body: dict[str, Any]) -> str:
    return json_encode(body).decode()
