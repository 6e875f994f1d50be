"""Backup, restore and migration speed on a generated install (docs/benchmarks.md, "Data lifecycle").

    .venv/bin/python bench/lifecycle.py --messages 100000

Generates an embedded install (users, private chats, groups, media; rows written in bulk, as
tests/lifecycle/generate.py does), then times the real operations: ``backup_sqlite`` (online backup API + blob
copy + verification), ``restore_sqlite`` (hash check, staged copy, integrity check) and ``migrate`` into a
throwaway PostgreSQL (copy in batches of 5,000 rows + verification). Prints one line per step.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import servers  # noqa: E402
from tests.lifecycle.generate import generate  # noqa: E402

from hubbub.engines.blobs.local import LocalBlobStore  # noqa: E402
from hubbub.tools.backup import backup_sqlite, restore_sqlite  # noqa: E402
from hubbub.tools.migrate_pg import migrate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--files", type=int, default=60)
    args = parser.parse_args()
    print(f"nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="hubbub-bench-life-") as tmp:
        root = Path(tmp)
        data = root / "single"
        started = time.monotonic()
        made = generate(data, args.messages, files=args.files)
        db_mb = (data / "hubbub.db").stat().st_size / 1e6
        print(f"generated {made} in {time.monotonic() - started:.1f} s; database {db_mb:.1f} MB")

        report = backup_sqlite(data, data / "blobs", root / "backup")
        mb = (report.db_bytes + report.blob_bytes) / 1e6
        print(
            f"backup:  {report.seconds:6.2f} s  {mb:7.1f} MB  {mb / report.seconds:6.1f} MB/s  "
            f"{made['messages'] / report.seconds:9.0f} messages/s  ({report.blobs} blobs)"
        )
        restored = restore_sqlite(root / "backup", root / "restored")
        print(
            f"restore: {restored.seconds:6.2f} s  {mb:7.1f} MB  {mb / restored.seconds:6.1f} MB/s  "
            f"{made['messages'] / restored.seconds:9.0f} messages/s"
        )
        pg = servers.acquire_postgres()
        try:
            url = pg.create_database("benchlife").replace("postgresql://", "postgresql+asyncpg://")
            result = asyncio.run(
                migrate(
                    f"sqlite+aiosqlite:///{data / 'hubbub.db'}", url, LocalBlobStore(data / "blobs"), None
                )
            )
        finally:
            servers.release("pg")
        rows = sum(result.rows.values())
        print(
            f"migrate: {result.seconds:6.2f} s  {rows} rows  {rows / result.seconds:9.0f} rows/s  "
            f"{made['messages'] / result.seconds:9.0f} messages/s  (copy + verification)"
        )
        for check in result.checks:
            print(f"  ok {check}")


if __name__ == "__main__":
    main()
