"""The embedded default's hot path: a batch of private messages stored in one call on one thread.

Through aiosqlite and SQLAlchemy a batch costs ~26 thread hops (one per statement) plus building each
statement; the 1:1 benchmark found that to be half the server's time. Here the whole transaction is one
function on a dedicated thread with its own connection and plain SQL: one hop per batch. What it stores
and returns is decided by the same pure planning as ``SqlStorage._store_messages`` (write_plan.py); only the
statements differ (the contract tests run both paths). Group messages, which need the membership rules
inside the transaction, keep the general path.

SQLite allows one writer at a time: this writer and the engine's take turns through BEGIN IMMEDIATE and the
busy timeout, as two processes would.

**Small batches are stored on the event loop itself**, not on the thread. A commit in WAL mode with
``synchronous=NORMAL`` does not sync the disk, so a batch of a few messages is tens of microseconds of work,
while the hop to a thread and back (a future, a wake-up through the loop's self-pipe, and the GIL handed back
and forth for every statement, each hand-back waiting up to the interpreter's switch interval while the loop
is busy) cost more than the work and, under load, tens of milliseconds of latency (docs/benchmarks.md,
"Latency under load"). Two rules keep the loop from ever waiting on the disk or a lock there:

- the loop's connection has a busy timeout of zero: if another writer holds the lock (a group message on the
  engine's connection, a big batch on the thread), BEGIN fails at once and the batch goes to the thread,
  which waits its turn;
- it never checkpoints (``wal_autocheckpoint=0``): the thread runs a passive checkpoint every
  ``CHECKPOINT_EVERY`` loop commits, so the sync that a checkpoint does happens off the loop.

Large batches (over ``inline_max``), which only form under heavy load, still go to the thread, so a
machine with more than one core keeps storing while the loop reads the next frames.
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
from hubbub.engines.storage.base import IndexProgress, NewMessage, Rejected, Stored
from hubbub.engines.storage.sqlite_indexer import index_pass
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


#: Loop commits between two checkpoints on the thread (SQLite's own default is every 1,000 pages of WAL).
CHECKPOINT_EVERY = 256
#: Batches up to this many messages are stored on the event loop.
INLINE_MAX = 64


class SqliteBatchWriter:
    def __init__(self, path: str, inline_max: int = INLINE_MAX) -> None:
        self.path = path
        self.inline_max = inline_max
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="hubbub-sqlite-writer")
        self._db: sqlite3.Connection | None = None  # the thread's: waits for the lock
        self._loop_db: sqlite3.Connection | None = None  # the loop's: never waits
        #: Batches (and indexer passes) handed to the thread and not back yet: later batches queue behind them,
        #: in order.
        self._on_thread = 0
        self._uncheckpointed = 0
        self.queries = 0
        #: For benchmarks: batches stored on the loop, and on the thread.
        self.inline_batches = 0
        self.thread_batches = 0

    @staticmethod
    def handles(batch: list[NewMessage]) -> bool:
        """Private conversations only, in their canonical spelling (the general path refuses the others)."""
        return all(parse_private(m.conv) is not None for m in batch)

    async def store(self, batch: list[NewMessage]) -> list[Stored | Rejected]:
        try:
            if len(batch) <= self.inline_max and not self._on_thread:
                results = self._store_on_loop(batch)
                if results is not None:
                    return results
            self._on_thread += 1
            try:
                return await asyncio.get_running_loop().run_in_executor(
                    self._thread, self._store_on_thread, batch
                )
            finally:
                self._on_thread -= 1
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full, I/O error
            raise HubbubError(Code.UNAVAILABLE, "storage is unavailable, nothing was stored") from exc

    async def index(self, batch: int) -> IndexProgress:
        """One search-indexer pass (sqlite_indexer.py) on the thread: FTS5's work releases the GIL there. A
        pass holds the write lock for milliseconds, so batches stored meanwhile queue behind it on the thread
        (counted in ``_on_thread``) instead of each trying the lock from the loop first and failing."""
        self._on_thread += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._thread, self._index_on_thread, batch
            )
        except sqlite3.OperationalError as exc:
            raise HubbubError(Code.UNAVAILABLE, "storage is unavailable") from exc
        finally:
            self._on_thread -= 1

    def _index_on_thread(self, batch: int) -> IndexProgress:
        progress, statements = index_pass(self._thread_connection(), batch)
        self.queries += statements
        return progress

    def close(self) -> None:
        if self._loop_db is not None:
            self._loop_db.close()
            self._loop_db = None
        self._thread.submit(self._close).result()
        self._thread.shutdown()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _store_on_loop(self, batch: list[NewMessage]) -> list[Stored | Rejected] | None:
        """Store the batch now, on the loop; None if another writer holds the lock (nothing was done)."""
        try:
            if self._loop_db is None:
                self._loop_db = _connect(self.path, busy_timeout_ms=0, autocheckpoint=False)
            results = self._store(self._loop_db, batch)
        except _Busy:
            return None
        self.inline_batches += 1
        self._uncheckpointed += 1
        if self._uncheckpointed >= CHECKPOINT_EVERY:
            self._uncheckpointed = 0
            self._thread.submit(self._checkpoint)
        return results

    def _store_on_thread(self, batch: list[NewMessage]) -> list[Stored | Rejected]:
        self.thread_batches += 1
        return self._store(self._thread_connection(), batch)

    def _checkpoint(self) -> None:
        """Move the WAL's pages into the database file, off the loop; passive: it never blocks a writer."""
        try:
            self._thread_connection().execute("PRAGMA wal_checkpoint(PASSIVE)")
        except sqlite3.Error:  # the next one will do; SQLite's own checkpoints on other connections go on
            pass

    def _thread_connection(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = _connect(self.path, busy_timeout_ms=5000, autocheckpoint=True)
        return self._db

    def _store(self, db: sqlite3.Connection, batch: list[NewMessage]) -> list[Stored | Rejected]:
        """Execute the batch's plan (write_plan.py) in raw SQL: the same decisions as the general path."""
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
                raise _Busy from exc
            raise
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


class _Busy(sqlite3.OperationalError):
    """Another connection holds SQLite's write lock: on the loop's connection (busy timeout zero) the batch
    goes to the thread; anywhere else it is the lock held past the busy timeout, which ``store`` reports as
    ``unavailable`` like any other OperationalError."""


def _connect(path: str, *, busy_timeout_ms: int, autocheckpoint: bool) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000)
    pragmas = [f"busy_timeout={busy_timeout_ms}", "journal_mode=WAL", "synchronous=NORMAL"]
    if not autocheckpoint:
        pragmas.append("wal_autocheckpoint=0")
    try:
        for pragma in pragmas:
            db.execute(f"PRAGMA {pragma}")
    except sqlite3.OperationalError as exc:
        db.close()
        if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY:
            raise _Busy from exc
        raise
    return db


def _json(body: dict[str, Any]) -> str:
    return json_encode(body).decode()
