"""The embedded default's hot path: a batch of private messages stored in one call on one thread.

Through aiosqlite and SQLAlchemy a batch costs ~26 thread hops (one per statement) plus building each
statement; the 1:1 benchmark found that to be half the server's time. Here the whole transaction is one
function on a dedicated thread with its own connection and plain SQL: one hop per batch. It does exactly what
``SqlStorage._store_messages`` does for private conversations (the contract tests run both paths); group
messages, which need the membership rules inside the transaction, keep the general path.

SQLite allows one writer at a time: this connection and the engine's writer take turns through BEGIN
IMMEDIATE and the busy timeout, as two processes would.
"""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from hubbub.core.convs import parse_private
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.engines.storage.sqlutil import json_decode, json_encode

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

    async def store(self, batch: list[NewMessage]) -> list[Stored]:
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

    def _store(self, batch: list[NewMessage]) -> list[Stored]:
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        queries = 2
        try:
            existing: dict[tuple[int, str], Message] = {}
            for key in {(m.sender, m.cmid) for m in batch}:
                queries += 1
                row = db.execute(_FIND, key).fetchone()
                if row is not None:
                    existing[key] = Message(
                        id=str(row[2]),
                        conv=row[0],
                        seq=row[1],
                        sender=row[3],
                        type=row[4],
                        body=json_decode(row[5]),
                        ts=row[6],
                        cmid=row[7],
                        recalled=bool(row[8]),
                    )
            per_conv: dict[str, list[NewMessage]] = {}
            seen = set(existing)
            for m in batch:
                if (m.sender, m.cmid) not in seen:
                    seen.add((m.sender, m.cmid))
                    per_conv.setdefault(m.conv, []).append(m)
            stored: dict[tuple[int, str], Message] = {}
            rows = []
            for conv, ms in per_conv.items():
                queries += 1
                top_row = db.execute(_BUMP, (len(ms), ms[-1].ts, conv)).fetchone()
                if top_row is None:
                    queries += 2
                    db.execute(_NEW_CONV, (conv, len(ms), ms[-1].ts))
                    db.executemany(_NEW_MEMBER, [(uid, conv) for uid in ms[0].members])
                    top = len(ms)
                else:
                    top = int(top_row[0])
                first = top - len(ms) + 1
                for offset, m in enumerate(ms):
                    message = Message(
                        id=str(m.id),
                        conv=conv,
                        seq=first + offset,
                        sender=m.sender,
                        type=m.type,
                        body=m.body,
                        ts=m.ts,
                        cmid=m.cmid,
                    )
                    stored[(m.sender, m.cmid)] = message
                    rows.append(
                        (
                            conv,
                            message.seq,
                            m.id,
                            m.sender,
                            m.cmid,
                            m.type,
                            json_encode(m.body).decode(),
                            m.ts,
                        )
                    )
            if rows:
                queries += 1
                db.executemany(_INSERT, rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        finally:
            self.queries += queries
        results: list[Stored] = []
        first_seen: set[tuple[int, str]] = set()
        for m in batch:
            key = (m.sender, m.cmid)
            if key in existing:  # republished to the pair, as a resend is (SqlStorage._store_messages)
                pair = parse_private(existing[key].conv) or ()
                results.append(Stored(message=existing[key], duplicate=True, recipients=pair))
            else:
                results.append(Stored(message=stored[key], duplicate=key in first_seen, recipients=m.members))
                first_seen.add(key)
        return results
