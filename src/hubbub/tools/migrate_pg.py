"""``hubbub admin migrate-to-postgres``: move an embedded install (SQLite + local blobs) onto PostgreSQL
(and optionally S3), the upgrade path from one machine to a cluster (docs/operations.md).

1. The target database is brought to the newest schema (the same migrations as ``hubbub migrate``); it
   must hold no data, unless it is this command's own unfinished run.
2. Every table is copied in primary-key order, a batch at a time. Each batch and the position it reached are
   committed in **one** PostgreSQL transaction (the position is a ``settings`` row), so a run that is
   interrupted (Ctrl-C, a crash, the network) resumes exactly where it stopped: run the same command again.
3. The serial counters (users, groups, friend requests) are moved past the copied ids.
4. Blobs are copied into the target blob store when it is not the same directory (S3), also resumable.
5. Verification, printed check by check: the same row count in every table; the same max seq and purged
   floor for every conversation; the same number, lowest and highest seq of messages in every conversation,
   and gap-free (every seq above the floor present); every blob's bytes hash to its key in the target store,
   as they do in the source.
The node must be stopped during the copy (a message stored after a table was copied would be missed; the
verification would catch it).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, delete, func, select, text, tuple_
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hubbub.engines.blobs.base import BlobNotFound, BlobStore
from hubbub.engines.storage import schema as t
from hubbub.tools import ToolError

#: The ``settings`` row holding how far a run got (deleted once verification passed).
STATE_KEY = "migrate_from_sqlite"
BATCH = 5000
#: Tables whose integer ids come from a PostgreSQL sequence.
SERIAL = ("users", "friend_requests", "groups")
Progress = Callable[[str, int, int], None]


@dataclass
class MigrationReport:
    rows: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    blob_bytes: int = 0
    checks: list[str] = field(default_factory=list)
    resumed: bool = False
    seconds: float = 0.0


def _quiet(_what: str, _done: int, _total: int) -> None:
    pass


def _pk(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


async def migrate(
    sqlite_url: str,
    target_url: str,
    source_blobs: BlobStore,
    target_blobs: BlobStore | None,
    progress: Progress = _quiet,
    batch: int = BATCH,
    stop_after: int | None = None,
) -> MigrationReport:
    """Copy, then verify (see the module docstring). ``target_blobs`` None: the blobs stay where they are
    (a directory the cluster shares); they are still hashed and checked. ``stop_after`` (tests): stop after
    that many batches, as an interrupted run would."""
    from hubbub.engines.storage.sql import SqlStorage

    started = time.monotonic()
    report = MigrationReport()
    source = create_async_engine(sqlite_url)
    target_storage = SqlStorage(target_url)
    try:
        await target_storage.start()  # the newest schema
        target = target_storage.engine
        state = await _state(target)
        report.resumed = bool(state)
        if not state:
            async with target.connect() as conn:
                if await conn.scalar(select(func.count()).select_from(t.users)):
                    raise ToolError("the target database already holds users: migrate into an empty database")
        batches = 0
        for table in t.metadata.sorted_tables:
            position = state.get(table.name)
            if position == "done":
                continue
            total = await _count(source, table)
            copied = await _count(target, table, exclude_state=table is t.settings)
            progress(table.name, copied, total)
            last = position
            while True:
                async with source.connect() as src:
                    query = select(table).order_by(*_pk(table)).limit(batch)
                    if last is not None:
                        query = query.where(tuple_(*_pk(table)) > tuple(last))
                    rows = [dict(r._mapping) for r in await src.execute(query)]
                if not rows:
                    break
                last = [rows[-1][c.name] for c in _pk(table)]
                state[table.name] = last
                async with target.begin() as conn:
                    await conn.execute(postgresql.insert(table).on_conflict_do_nothing(), rows)
                    await _save_state(conn, state)
                copied += len(rows)
                progress(table.name, copied, total)
                batches += 1
                if stop_after is not None and batches >= stop_after:
                    raise ToolError(f"stopped after {batches} batches (as asked)")
                if len(rows) < batch:
                    break
            state[table.name] = "done"
            async with target.begin() as conn:
                await _save_state(conn, state)
        async with target.begin() as conn:
            for name in SERIAL:
                await conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), COALESCE(MAX(id), 1), "
                        f"MAX(id) IS NOT NULL) FROM {name}"
                    )
                )
        if target_blobs is not None:
            report.blobs, report.blob_bytes = await _copy_blobs(source, source_blobs, target_blobs, progress)
        report.checks = await verify(source, target, source_blobs, target_blobs or source_blobs, progress)
        report.rows = {
            table.name: await _count(target, table, exclude_state=True) for table in t.metadata.sorted_tables
        }
        async with target.begin() as conn:
            await conn.execute(delete(t.settings).where(t.settings.c.key == STATE_KEY))
    finally:
        await source.dispose()
        await target_storage.close()
    report.seconds = round(time.monotonic() - started, 3)
    return report


async def _state(engine: AsyncEngine) -> dict[str, Any]:
    async with engine.connect() as conn:
        raw = await conn.scalar(select(t.settings.c.value).where(t.settings.c.key == STATE_KEY))
    return dict(json.loads(raw)) if raw else {}


async def _save_state(conn: AsyncConnection, state: dict[str, Any]) -> None:
    value = json.dumps(state)
    await conn.execute(
        postgresql.insert(t.settings)
        .values(key=STATE_KEY, value=value)
        .on_conflict_do_update(index_elements=[t.settings.c.key], set_={"value": value})
    )


async def _count(engine: AsyncEngine, table: Table, exclude_state: bool = False) -> int:
    query = select(func.count()).select_from(table)
    if exclude_state and table is t.settings:
        query = query.where(t.settings.c.key != STATE_KEY)
    async with engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def _copy_blobs(
    source: AsyncEngine, src: BlobStore, dst: BlobStore, progress: Progress
) -> tuple[int, int]:
    b = t.blobs
    async with source.connect() as conn:
        total = int(await conn.scalar(select(func.count()).select_from(b)) or 0)
    done = copied = size_total = 0
    after = ""
    while True:
        async with source.connect() as conn:
            rows = (
                await conn.execute(
                    select(b.c.key, b.c.size).where(b.c.key > after).order_by(b.c.key).limit(500)
                )
            ).all()
        if not rows:
            break
        for key, size in rows:
            after = key
            done += 1
            if await dst.size(key) == size:
                continue  # copied by an earlier run
            actual = await src.size(key)
            if actual is None:
                continue  # reported by the verification
            await dst.put(key, src.get(key), actual)
            copied += 1
            size_total += actual
        progress("blobs", done, total)
    return copied, size_total


async def _sha(store: BlobStore, key: str) -> str | None:
    h = hashlib.sha256()
    try:
        async for chunk in store.get(key):
            h.update(chunk)
    except BlobNotFound:
        return None
    return h.hexdigest()


async def verify(
    source: AsyncEngine,
    target: AsyncEngine,
    source_blobs: BlobStore,
    target_blobs: BlobStore,
    progress: Progress = _quiet,
) -> list[str]:
    """Compare source and target; raise ToolError listing what differs, else return the checks made."""
    checks: list[str] = []
    problems: list[str] = []
    for table in t.metadata.sorted_tables:
        a, b = await _count(source, table), await _count(target, table, exclude_state=True)
        (checks if a == b else problems).append(f"{table.name}: {a} rows in SQLite, {b} in PostgreSQL")
    c, m = t.conversations, t.messages
    convs_q = select(c.c.conv, c.c.max_seq, c.c.purged_seq)
    msgs_q = select(m.c.conv, func.count(), func.min(m.c.seq), func.max(m.c.seq)).group_by(m.c.conv)
    found: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for engine in (source, target):
        async with engine.connect() as conn:
            convs = {r[0]: (int(r[1]), int(r[2])) for r in await conn.execute(convs_q)}
            msgs = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in await conn.execute(msgs_q)}
        found.append((convs, msgs))
    (src_convs, src_msgs), (dst_convs, dst_msgs) = found
    if src_convs != dst_convs:
        differ = sorted(
            k for k in src_convs.keys() | dst_convs.keys() if src_convs.get(k) != dst_convs.get(k)
        )
        problems.append(
            f"max seq or purged floor differs in {len(differ)} conversation(s), e.g. {differ[:3]}"
        )
    else:
        checks.append(f"conversations: the same max seq and purged floor in all {len(src_convs)}")
    if src_msgs != dst_msgs:
        differ = sorted(k for k in src_msgs.keys() | dst_msgs.keys() if src_msgs.get(k) != dst_msgs.get(k))
        problems.append(
            f"messages differ (count, lowest or highest seq) in {len(differ)} conversation(s), e.g. {differ[:3]}"
        )
    else:
        checks.append(
            f"messages: the same count, lowest and highest seq in all {len(src_msgs)} conversations"
        )
    holes = [
        conv
        for conv, (top, floor) in dst_convs.items()
        if top > floor and dst_msgs.get(conv) != (top - floor, floor + 1, top)
    ]
    if holes:
        problems.append(f"{len(holes)} conversation(s) are not gap-free above their floor, e.g. {holes[:3]}")
    else:
        checks.append(f"seqs: gap-free above the purged floor in all {len(dst_convs)} conversations")
    async with target.connect() as conn:
        keys = list((await conn.execute(select(t.blobs.c.key).order_by(t.blobs.c.key))).scalars())
    bad: list[str] = []
    for i, key in enumerate(keys, 1):
        want = await _sha(source_blobs, key)
        got = want if target_blobs is source_blobs else await _sha(target_blobs, key)
        if got is None or got != want or got != key.split(".")[0]:
            bad.append(key)
        if i % 200 == 0 or i == len(keys):
            progress("verify blobs", i, len(keys))
    if bad:
        problems.append(f"{len(bad)} blob(s) missing or not hashing to their key, e.g. {bad[:3]}")
    else:
        checks.append(
            f"blobs: all {len(keys)} present in the target store and hashing (SHA-256) to their keys"
        )
    if problems:
        raise ToolError("verification failed:\n  " + "\n  ".join(problems))
    return checks
