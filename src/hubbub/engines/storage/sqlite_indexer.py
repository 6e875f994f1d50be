"""The search indexer's pass on the embedded default: plain sqlite3 on the batch writer's thread.

The general pass (sql_search.py) cost ~65 µs of CPU per message through SQLAlchemy and aiosqlite: a row
object, a parameter dict and a compiled statement per message, about as much as storing and delivering the
message. FTS5's own work is ~16 µs per message in batches of 500 (docs/benchmarks.md, "Session 4"), so the
node's sustainable rate was half its closed-loop peak. Here the pass is one function over tuples.

Indexing inside the storing transaction instead was measured and refused: FTS5 pays ~230 µs per transaction
(a new segment), so at low rates, where every message is its own batch, it would cost four times the
message. A deferred pass of up to ``search_index_batch`` messages pays it once per batch.

The effects are the general pass's: entries of the batch replaced (a re-index by an edit may have written
some already), the watermark moved in the same transaction. SQLite needs none of PostgreSQL's hole tracking:
its one writer commits rowids in order, so nothing can appear below a rowid already read.
"""

from __future__ import annotations

import sqlite3

from hubbub.core import searchtext
from hubbub.engines.storage.base import IndexProgress
from hubbub.engines.storage.sql_search import WATERMARK_KEY
from hubbub.engines.storage.sqlutil import json_decode

_WATERMARK = "SELECT value FROM settings WHERE key = ?"
_SET_WATERMARK = (
    "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_READ = "SELECT rowid, type, body, recalled FROM messages WHERE rowid > ? ORDER BY rowid LIMIT ?"
_CLEAR = "DELETE FROM message_fts WHERE rowid > ? AND rowid <= ?"
_ADD = "INSERT INTO message_fts (rowid, text) VALUES (?, ?)"
_NEWEST = "SELECT max(rowid) FROM messages"


def index_pass(db: sqlite3.Connection, batch: int) -> tuple[IndexProgress, int]:
    """Index up to ``batch`` messages past the watermark, in one transaction on ``db``; also the number of
    statements it ran (the storage's query count)."""
    # Nothing new (an idle node, every interval): two reads, no write lock taken.
    newest = db.execute(_NEWEST).fetchone()[0] or 0
    watermark = _watermark(db)
    if watermark >= newest:
        return IndexProgress(indexed=0, watermark=watermark, newest=int(newest)), 2
    db.execute("BEGIN IMMEDIATE")
    statements = 7  # the two reads, BEGIN, the watermark again, the read, the newest, COMMIT
    try:
        watermark = _watermark(db)  # another pass may have moved it since
        rows = db.execute(_READ, (watermark, batch)).fetchall()
        if rows:
            entries = []
            for rid, msg_type, body, recalled in rows:
                value = searchtext.index_text(msg_type, json_decode(body) if body else {}, bool(recalled))
                if value:
                    entries.append((rid, value))
            last = rows[-1][0]
            db.execute(_CLEAR, (watermark, last))
            db.executemany(_ADD, entries)
            db.execute(_SET_WATERMARK, (WATERMARK_KEY, str(last)))
            watermark = last
            statements += 3
        newest = db.execute(_NEWEST).fetchone()[0] or 0
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return IndexProgress(indexed=len(rows), watermark=watermark, newest=int(newest)), statements


def _watermark(db: sqlite3.Connection) -> int:
    found = db.execute(_WATERMARK, (WATERMARK_KEY,)).fetchone()
    return int(found[0]) if found is not None else 0
