"""The node's CPU for storing private messages in PostgreSQL: the general SQLAlchemy path against the lean
asyncpg path (engines/storage/pg_writer.py), in process, on a throwaway PostgreSQL (issue 19, target 4).

    .venv/bin/python bench/pg_write_path.py                 # 4,000 messages per size and path
    .venv/bin/python bench/pg_write_path.py --messages 1000

For batch sizes 1, 4 and 16 (what the batcher forms at low, medium and high load), 200 private conversations
take turns; each path stores the same number of messages into conversations that already exist. Reported:
this process's CPU seconds per 1,000 messages (``time.process_time``: the node's side only, so a busy machine
inflates it far less than wall time), PostgreSQL's CPU per 1,000 (its processes' utime+stime), and SQL
statements per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import servers  # noqa: E402

from hubbub.core.convs import private_conv  # noqa: E402
from hubbub.core.ids import MessageIds  # noqa: E402
from hubbub.engines.storage.base import NewMessage  # noqa: E402
from hubbub.engines.storage.sql import SqlStorage  # noqa: E402

CONVS = 200
_ids = MessageIds("bench")
_cmids = itertools.count()


def pg_cpu(pg: servers.PostgresServer) -> float:
    """CPU seconds of the postmaster and every backend so far."""
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        postmaster = int(f.readline())
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == postmaster or int(fields[1]) == postmaster:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def batch_of(size: int, turn: int) -> list[NewMessage]:
    out = []
    for i in range(size):
        a = 1 + 2 * ((turn * size + i) % CONVS)
        conv = private_conv(a, a + 1)
        out.append(
            NewMessage(
                id=_ids.next(),
                conv=conv,
                sender=a,
                cmid=f"b{next(_cmids)}",
                type="text",
                body={"text": "hello there"},
                ts=1_700_000_000_000,
                members=(a, a + 1),
            )
        )
    return out


async def measure(
    storage: SqlStorage, pg: servers.PostgresServer, size: int, messages: int
) -> dict[str, float]:
    turns = messages // size
    for turn in range(CONVS):  # every conversation exists, its first batch out of the measurement
        await storage.store_messages(batch_of(1, turn))
    queries0, cpu0, pg0 = storage.queries, time.process_time(), pg_cpu(pg)
    for turn in range(turns):
        await storage.store_messages(batch_of(size, turn))
    n = turns * size
    return {
        "node CPU s/1k": 1000 * (time.process_time() - cpu0) / n,
        "pg CPU s/1k": 1000 * (pg_cpu(pg) - pg0) / n,
        "statements/batch": (storage.queries - queries0) / turns,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=4000)
    args = parser.parse_args()
    pg = servers.PostgresServer().start()
    rows: dict[str, dict[str, float]] = {}
    try:
        for size in (1, 4, 16):
            for path in ("general", "lean"):
                url = "postgresql+asyncpg://" + pg.create_database("bench").split("://", 1)[1]
                storage = SqlStorage(url)
                await storage.start()
                if path == "general" and storage._pg_writer is not None:
                    await storage._pg_writer.close()
                    storage._pg_writer = None
                try:
                    rows[f"batch {size:>2}, {path}"] = await measure(storage, pg, size, args.messages)
                finally:
                    await storage.close()
    finally:
        pg.destroy()
        servers.cleanup_template()
    columns = list(next(iter(rows.values())))
    print(f"{'':20}" + "".join(f"{c:>20}" for c in columns))
    for name, row in rows.items():
        print(f"{name:20}" + "".join(f"{row[c]:>20.3f}" for c in columns))


if __name__ == "__main__":
    asyncio.run(main())
