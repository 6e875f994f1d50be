"""Message search for :class:`SqlStorage`: the index, its indexer, and the queries (base.SearchStorage).

Two engines, one shape (docs/architecture.md, "Search"):

- **SQLite**: ``message_fts``, an FTS5 table with the trigram tokenizer whose rowid is the message's rowid.
  A term of three characters or more is an FTS5 phrase (quoted: never query syntax), which the trigram
  tokenizer answers as a substring match in any script.
- **PostgreSQL**: ``message_search`` (rid, conv, seq, sender, type, ts, text) with a ``pg_trgm`` GIN index;
  a term is a ``LIKE '%term%'`` (escaped), which the GIN index answers for terms of three characters or more.

Terms shorter than three characters have no trigram on either engine. A query made only of such terms reads
the newest ``short_scan`` visible messages in scope (one conversation, or all of the user's) and tests each
with ``instr``/``strpos``; the page says where it stopped (``complete=False``) and the next page continues
below. A short term beside a long one is only a filter on what the long one found.

Visibility is one SQL fragment (``_VISIBLE``), used by every query: a member row for the user, a seq above
the one they joined after, not recalled, not hidden by the user ("delete for me"): one place, every query.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.core import searchtext
from hubbub.core.models import Message
from hubbub.engines.storage.base import IndexProgress, SearchHit, SearchPage, SearchQuery
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import json_decode, message_of, unavailable

#: The settings row holding the indexer's watermark.
WATERMARK_KEY = "search_watermark"
#: A hole in PostgreSQL's rids still empty after this long is a rolled-back send, not a slow commit: the
#: storing transaction holds its rid for milliseconds, and a pool connection waits at most 10 s.
GAP_WAIT_S = 60.0
#: Holes remembered at most (a sequence skips up to 32 values after a PostgreSQL crash; a flood of rolled
#: back sends could leave more): the oldest are passed over first.
MAX_GAPS = 10_000
#: The PostgreSQL advisory lock that makes one node the indexer at a time (held exclusively by a pass), and
#: keeps passes and re-indexes (an edit's, held shared) apart: ``_hold_index``.
INDEXER_LOCK = 0x48554253  # "HUBS"
#: Passes in a row that found the lock taken before the next one waits for it: edits hold it shared, and a
#: steady stream of them (a bot editing as it writes) always has one in flight, so trying alone could starve
#: the index.
MAX_SKIPPED_PASSES = 3

_MSG_COLS = "m.id, m.conv, m.seq, m.sender, m.cmid, m.type, m.body, m.ts, m.recalled"
#: What a user may see of a message ``m`` with their member row ``cm`` (the module docstring).
_NOT_HIDDEN = "NOT EXISTS (SELECT 1 FROM hidden_messages h WHERE h.user_id = :me AND h.conv = m.conv AND h.seq = m.seq)"
_VISIBLE = f"cm.user_id = :me AND cm.conv = m.conv AND m.seq > cm.min_seq AND m.recalled = :no AND {_NOT_HIDDEN}"
_SEARCH_TYPES = searchtext.KINDS


class SqlSearch(SqlHost):
    #: The indexer's view between calls: the highest rid indexed and the holes below it (PostgreSQL), valid
    #: while the stored watermark is still the one this node wrote.
    _idx_high: int = 0
    _idx_written: int = -1
    _idx_skipped: int = 0
    _idx_gaps: dict[int, float]

    def _rid(self) -> str:
        return "m.rowid" if self.dialect == "sqlite" else "m.rid"

    # -- indexing ---------------------------------------------------------------------------------
    @unavailable
    async def index_messages(self, batch: int) -> IndexProgress:
        if self._batch_writer is not None:  # the embedded default's lean pass (sqlite_indexer.py)
            return await self._batch_writer.index(batch)
        async with self._tx() as conn:
            if self.dialect == "postgresql":
                if self._idx_skipped >= MAX_SKIPPED_PASSES:
                    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": INDEXER_LOCK})
                else:
                    held = (
                        await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": INDEXER_LOCK})
                    ).scalar_one()
                    if not held:
                        self._idx_skipped += 1
                        return IndexProgress(indexed=0, watermark=0, newest=0, ran=False)
                self._idx_skipped = 0
            watermark = await self._watermark(conn)
            if watermark != self._idx_written or not hasattr(self, "_idx_gaps"):
                # Another node indexed since (or this is the first call): start from what it stored.
                self._idx_high, self._idx_gaps = watermark, {}
            rid = self._rid()
            rows = list(
                await conn.execute(
                    text(
                        f"SELECT {rid} AS rid, m.conv, m.seq, m.sender, m.type, m.ts, m.body, m.recalled "
                        f"FROM messages m WHERE {rid} > :high ORDER BY {rid} LIMIT :n"
                    ),
                    {"high": self._idx_high, "n": batch},
                )
            )
            if self._idx_gaps:
                rows += list(
                    await conn.execute(
                        text(
                            f"SELECT {rid} AS rid, m.conv, m.seq, m.sender, m.type, m.ts, m.body, m.recalled "
                            f"FROM messages m WHERE {rid} IN :gaps"
                        ).bindparams(bindparam("gaps", expanding=True)),
                        {"gaps": list(self._idx_gaps)},
                    )
                )
            await self._write_entries(conn, rows)
            now = time.monotonic()
            for row in rows:
                self._idx_gaps.pop(row.rid, None)
            fresh = sorted(row.rid for row in rows if row.rid > self._idx_high)
            expected = self._idx_high + 1
            for found in fresh:
                for hole in range(expected, min(found, expected + MAX_GAPS)):
                    self._idx_gaps[hole] = now
                expected = found + 1
            if fresh:
                self._idx_high = fresh[-1]
            for hole, seen in list(self._idx_gaps.items()):
                if now - seen > GAP_WAIT_S:
                    del self._idx_gaps[hole]
            while len(self._idx_gaps) > MAX_GAPS:
                del self._idx_gaps[min(self._idx_gaps)]
            new_watermark = min(self._idx_gaps) - 1 if self._idx_gaps else self._idx_high
            if new_watermark != watermark:
                await self._set_watermark(conn, new_watermark)
            self._idx_written = new_watermark
            newest = await self._newest(conn)
        return IndexProgress(indexed=len(rows), watermark=new_watermark, newest=newest)

    async def _watermark(self, conn: AsyncConnection) -> int:
        value = (
            await conn.execute(text("SELECT value FROM settings WHERE key = :k"), {"k": WATERMARK_KEY})
        ).scalar_one_or_none()
        return int(value) if value is not None else 0

    async def _set_watermark(self, conn: AsyncConnection, value: int) -> None:
        await conn.execute(
            text(
                "INSERT INTO settings (key, value) VALUES (:k, :v) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
            ),
            {"k": WATERMARK_KEY, "v": str(value)},
        )

    async def _newest(self, conn: AsyncConnection) -> int:
        rid = self._rid()
        value = (await conn.execute(text(f"SELECT max({rid}) FROM messages m"))).scalar_one_or_none()
        return int(value or 0)

    async def _write_entries(self, conn: AsyncConnection, rows: list[Any]) -> None:
        """Replace the entries of ``rows`` (idempotent: a batch redone after a crash changes nothing)."""
        if not rows:
            return
        rids = [row.rid for row in rows]
        entries = []
        for row in rows:
            body = json_decode(row.body) if row.body else {}
            value = searchtext.index_text(row.type, body, bool(row.recalled))
            if value:
                entries.append({**row._asdict(), "text": value})
        if self.dialect == "sqlite":
            await conn.execute(
                text("DELETE FROM message_fts WHERE rowid IN :rids").bindparams(
                    bindparam("rids", expanding=True)
                ),
                {"rids": rids},
            )
            if entries:
                await conn.execute(
                    text("INSERT INTO message_fts (rowid, text) VALUES (:rid, :text)"),
                    [{"rid": e["rid"], "text": e["text"]} for e in entries],
                )
            return
        await conn.execute(
            text("DELETE FROM message_search WHERE rid IN :rids").bindparams(
                bindparam("rids", expanding=True)
            ),
            {"rids": rids},
        )
        if entries:
            await conn.execute(
                text(
                    "INSERT INTO message_search (rid, conv, seq, sender, type, ts, text) "
                    "VALUES (:rid, :conv, :seq, :sender, :type, :ts, :text)"
                ),
                [{k: e[k] for k in ("rid", "conv", "seq", "sender", "type", "ts", "text")} for e in entries],
            )

    @unavailable
    async def reindex_message(self, conv: str, seq: int) -> None:
        async with self._tx() as conn:
            await self._hold_index(conn)
            await self._reindex(conn, conv, [seq])

    async def _hold_index(self, conn: AsyncConnection) -> None:
        """Keep indexer passes (on every node) out until ``conn``'s transaction ends; wait for one under way.

        A re-index and a pass both replace entries (delete, then insert). Side by side on PostgreSQL, the
        second insert of one rid met the first's uncommitted row and failed on the primary key: the cluster's
        intermittent ``internal`` on ``edit``. And a pass that read a message before an edit committed would
        write the old text over the new. The pass holds ``INDEXER_LOCK`` exclusively (and only tries: it skips
        a turn rather than wait); a re-index holds it shared, so re-indexes never wait for each other, only
        for a pass in flight (one short batch). SQLite's one writer already keeps them apart."""
        if self.dialect == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock_shared(:k)"), {"k": INDEXER_LOCK})

    async def _reindex(self, conn: AsyncConnection, conv: str, seqs: list[int]) -> None:
        """Rewrite the entries of messages ``seqs`` of ``conv`` from their text as ``conn`` sees it, inside its
        transaction, which must hold ``_hold_index``. Past the watermark the indexer will write them anyway;
        doing it now is harmless (idempotent)."""
        rid = self._rid()
        rows = list(
            await conn.execute(
                text(
                    f"SELECT {rid} AS rid, m.conv, m.seq, m.sender, m.type, m.ts, m.body, m.recalled "
                    "FROM messages m WHERE m.conv = :conv AND m.seq IN :seqs"
                ).bindparams(bindparam("seqs", expanding=True)),
                {"conv": conv, "seqs": sorted(set(seqs))},
            )
        )
        await self._write_entries(conn, rows)

    @unavailable
    async def search_backlog(self) -> IndexProgress:
        async with self.engine.connect() as conn:
            return IndexProgress(
                indexed=0, watermark=await self._watermark(conn), newest=await self._newest(conn)
            )

    # -- searching --------------------------------------------------------------------------------
    @unavailable
    async def search_messages(self, query: SearchQuery) -> SearchPage:
        terms = query.terms
        long_terms = [term for term in terms if len(term) >= searchtext.TRIGRAM]
        params: dict[str, Any] = {"me": query.user_id, "no": False, "lim": query.limit}
        sqlite = self.dialect == "sqlite"
        meta = "m" if sqlite else "s"  # where the sender, type and time are read
        filters: list[str] = []
        if query.conv is not None:
            filters.append(f"{meta}.conv = :conv")
            params["conv"] = query.conv
        if query.sender is not None:
            filters.append(f"{meta}.sender = :sender")
            params["sender"] = query.sender
        filters.append(f"{meta}.type IN :kinds")
        params["kinds"] = [k for k in (query.kinds or _SEARCH_TYPES) if k in _SEARCH_TYPES]
        if query.since is not None:
            filters.append(f"{meta}.ts >= :since")
            params["since"] = query.since
        if query.until is not None:
            filters.append(f"{meta}.ts < :until")
            params["until"] = query.until
        if query.before is not None:
            params["before"] = query.before
        for i, term in enumerate(terms):
            params[f"t{i}"] = term
        async with self.engine.connect() as conn:
            small = False
            if query.conv is not None:
                size = (
                    await conn.execute(
                        text("SELECT max_seq FROM conversations WHERE conv = :conv"), {"conv": query.conv}
                    )
                ).scalar_one_or_none()
                small = (size or 0) <= query.short_scan
            if long_terms and not small:
                return await self._search_index(conn, query, long_terms, filters, params)
            return await self._search_scan(conn, query, filters, params)

    async def _search_index(
        self,
        conn: AsyncConnection,
        query: SearchQuery,
        long_terms: list[str],
        filters: list[str],
        params: dict[str, Any],
    ) -> SearchPage:
        """The index finds the candidates (the terms of three characters or more), newest first; the
        membership join and the other terms filter them."""
        where = [_VISIBLE, *filters]
        if self.dialect == "sqlite":
            rid, col = "f.rowid", "f.text"
            source = "message_fts f JOIN messages m ON m.rowid = f.rowid"
            where.append("f.text MATCH :match")
            params["match"] = " ".join(searchtext.fts5_phrase(term) for term in long_terms)
        else:
            rid, col = "s.rid", "s.text"
            source = "message_search s JOIN messages m ON m.conv = s.conv AND m.seq = s.seq"
            for i, term in enumerate(long_terms):
                where.append(f"s.text LIKE :like{i} ESCAPE '\\'")
                params[f"like{i}"] = searchtext.like_contains(term)
        contains = "instr" if self.dialect == "sqlite" else "strpos"
        where += [f"{contains}({col}, :t{i}) > 0" for i, t in enumerate(query.terms) if t not in long_terms]
        if query.before is not None:
            where.append(f"{rid} < :before")
        sql = (
            f"SELECT {rid} AS rid, {_MSG_COLS} FROM {source} JOIN conv_members cm ON cm.conv = m.conv "
            f"WHERE {' AND '.join(where)} ORDER BY {rid} DESC LIMIT :lim"
        )
        rows = list(await conn.execute(_expanding(sql), params))
        more = len(rows) == query.limit
        return SearchPage(hits=_hits(rows, query.terms), next_before=rows[-1].rid if more else None)

    async def _search_scan(
        self, conn: AsyncConnection, query: SearchQuery, filters: list[str], params: dict[str, Any]
    ) -> SearchPage:
        """Read the newest ``short_scan`` visible messages in scope and test every term on each: for a query
        of only short terms (no trigram to look up), and for one conversation small enough to read whole
        (cheaper than the index's candidates from every conversation). Driven from the user's member rows,
        so the cost is bounded by what the user can see, never by the whole store."""
        sqlite = self.dialect == "sqlite"
        rid = "m.rowid" if sqlite else "s.rid"
        # One conversation: its seq order is its rid order, and the primary key walks it.
        order = "m.seq DESC" if query.conv is not None else f"{rid} DESC"
        bound = [f"{rid} < :before"] if query.before is not None else []
        params["scan"] = query.short_scan
        contains = "instr" if sqlite else "strpos"
        if sqlite:
            # The window is cut from the messages' primary key alone (conv, seq and the rowid it holds: no
            # table reads), CROSS JOIN keeping SQLite from starting at the newest messages of everyone; only
            # its rows' text is read (in rowid order), and only the rows holding every word are read whole
            # for the other rules. The window counts every message the caller may see in scope.
            member = "cm.user_id = :me AND cm.conv = m.conv AND m.seq > cm.min_seq"
            scope = [f for f in filters if f.startswith("m.conv")]
            rest = ["m.recalled = :no", _NOT_HIDDEN, *(f for f in filters if not f.startswith("m.conv"))]
            window = (
                "SELECT m.rowid AS rid, m.conv AS conv, m.seq AS seq FROM conv_members cm CROSS JOIN messages m "
                f"WHERE {' AND '.join([member, *scope, *bound])} ORDER BY {order} LIMIT :scan"
            )
            found = [f"{contains}(f.text, :t{i}) > 0" for i in range(len(query.terms))]
            sql = (
                f"SELECT w.rid AS rid, {_MSG_COLS} FROM ({window}) w CROSS JOIN message_fts f "
                "CROSS JOIN messages m "
                f"WHERE f.rowid = w.rid AND m.conv = w.conv AND m.seq = w.seq AND {' AND '.join(found + rest)} "
                "ORDER BY w.rid DESC LIMIT :lim"
            )
        else:
            where = [_VISIBLE, *filters, *bound]
            window = (
                "SELECT s.rid AS rid, s.text AS text, m.conv AS conv, m.seq AS seq FROM conv_members cm "
                "JOIN message_search s ON s.conv = cm.conv JOIN messages m ON m.conv = s.conv AND m.seq = s.seq "
                f"WHERE {' AND '.join(where)} ORDER BY {order} LIMIT :scan"
            )
            found = [f"{contains}(w.text, :t{i}) > 0" for i in range(len(query.terms))]
            sql = (
                f"SELECT w.rid AS rid, {_MSG_COLS} FROM ({window}) w JOIN messages m ON m.conv = w.conv "
                f"AND m.seq = w.seq WHERE {' AND '.join(found)} ORDER BY w.rid DESC LIMIT :lim"
            )
        rows = list(await conn.execute(_expanding(sql), params))
        if len(rows) == query.limit:
            return SearchPage(hits=_hits(rows, query.terms), next_before=rows[-1].rid, complete=False)
        stats = (
            await conn.execute(
                _expanding(f"SELECT count(*) AS n, min(w.rid) AS low FROM ({window}) w"), params
            )
        ).one()
        exhausted = stats.n < query.short_scan
        return SearchPage(
            hits=_hits(rows, query.terms),
            next_before=None if exhausted else stats.low,
            complete=exhausted,
        )

    @unavailable
    async def messages_around(
        self, conv: str, seq: int, before: int, after: int, min_seq: int
    ) -> tuple[list[Message], bool, bool]:
        async with self.engine.connect() as conn:
            older = list(
                await conn.execute(
                    text(
                        f"SELECT {_MSG_COLS} FROM messages m WHERE m.conv = :conv AND m.seq <= :seq "
                        "AND m.seq > :min ORDER BY m.seq DESC LIMIT :n"
                    ),
                    {"conv": conv, "seq": seq, "min": min_seq, "n": before + 1},
                )
            )
            newer = list(
                await conn.execute(
                    text(
                        f"SELECT {_MSG_COLS} FROM messages m WHERE m.conv = :conv AND m.seq > :seq "
                        "AND m.seq > :min ORDER BY m.seq LIMIT :n"
                    ),
                    {"conv": conv, "seq": seq, "min": min_seq, "n": after + 1},
                )
            )
        has_older, has_newer = len(older) > before, len(newer) > after
        page = [message_of(row) for row in reversed(older[:before])] + [message_of(r) for r in newer[:after]]
        return page, has_older, has_newer


def _expanding(sql: str) -> Any:
    statement = text(sql)
    return statement.bindparams(bindparam("kinds", expanding=True)) if ":kinds" in sql else statement


def _hits(rows: list[Any], terms: list[str]) -> list[SearchHit]:
    """The rows whose current text holds every term (the index may predate an edit, or a rowid renumbered
    by a VACUUM): a stale entry costs a shorter page, never a wrong result."""
    hits = []
    for row in rows:
        message = message_of(row)
        current = searchtext.index_text(message.type, message.body, message.recalled)
        if all(term in current for term in terms):
            hits.append(SearchHit(message=message, rid=row.rid))
    return hits
