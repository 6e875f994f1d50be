"""``hubbub admin migrate-to-postgres`` on a generated install of 100,000 messages with groups and media:
interrupted, resumed by running the command again, verified; then a node on PostgreSQL serves it."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from hubbub.cli import app
from hubbub.engines.blobs.local import LocalBlobStore
from hubbub.tools import ToolError
from hubbub.tools.migrate_pg import migrate
from tests.conftest import base_url
from tests.lifecycle.generate import generate

ENV = {"HUBBUB_JWT_SECRET": "y" * 32}


async def test_migrate_100k_messages_resumes_and_verifies(make_node, tmp_path, postgres_server):
    data = tmp_path / "single"
    made = await asyncio.to_thread(generate, data, 100_000)
    target = postgres_server.create_database("mig")
    sqlite_url = f"sqlite+aiosqlite:///{data / 'hubbub.db'}"
    blobs = LocalBlobStore(data / "blobs")
    # A first run stops part way, as a crash would.
    try:
        await migrate(
            sqlite_url, target.replace("postgresql://", "postgresql+asyncpg://"), blobs, None, stop_after=5
        )
    except ToolError as exc:
        assert "stopped after 5" in str(exc)
    else:
        raise AssertionError("the first run should have stopped")
    runner = CliRunner()
    out = await asyncio.to_thread(
        runner.invoke, app, ["admin", "--data-dir", str(data), "migrate-to-postgres", "--to", target], env=ENV
    )
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    assert "(resumed)" in text
    assert "messages: 100000 rows in SQLite, 100000 in PostgreSQL" in text
    assert f"gap-free above the purged floor in all {made['conversations']} conversations" in text
    assert f"blobs: all {made['files']} present" in text
    # Running it again into the now full database is refused: nothing is copied twice.
    again = await asyncio.to_thread(
        runner.invoke, app, ["admin", "--data-dir", str(data), "migrate-to-postgres", "--to", target], env=ENV
    )
    assert again.exit_code == 1 and "already holds users" in again.output

    # The cluster's first node, on the new database and the same blob directory.
    node = await make_node(
        database=target, blob_dir=str(data / "blobs"), data_dir=str(tmp_path / "node"), retention_interval_s=0
    )
    import aiohttp

    async with aiohttp.ClientSession() as http:
        created = await http.post(
            base_url(node) + "/api/v1/auth/register",
            json={"username": "newcomer", "password": "correct-horse-battery"},
        )
        body = await created.json()
        assert created.status == 201, body
        assert body["user"]["id"] == made["users"] + 1  # the id sequence moved past the copied ids


async def test_migrate_into_s3_and_verification_catches_damage(tmp_path, postgres_server):
    import uuid

    from sqlalchemy.ext.asyncio import create_async_engine

    from hubbub.tools.migrate_pg import verify
    from tests import s3server
    from tests.contract.test_blobs import started_s3

    server = s3server.acquire()
    try:
        data = tmp_path / "single"
        made = await asyncio.to_thread(generate, data, 5_000, files=12)
        target = postgres_server.create_database("mig").replace("postgresql://", "postgresql+asyncpg://")
        sqlite_url = f"sqlite+aiosqlite:///{data / 'hubbub.db'}"
        local = LocalBlobStore(data / "blobs")
        s3 = await started_s3(server, "migrate", prefix=uuid.uuid4().hex)
        report = await migrate(sqlite_url, target, local, s3)
        assert report.blobs == made["files"] and not report.resumed
        assert any("hashing (SHA-256) to their keys" in c for c in report.checks)

        source, dest = create_async_engine(sqlite_url), create_async_engine(target)
        try:
            async with dest.begin() as conn:
                from sqlalchemy import text

                await conn.execute(text("DELETE FROM messages WHERE conv = 'g:1' AND seq = 2"))
            key = next(iter(p.name for p in (data / "blobs").rglob("*") if p.is_file()))
            await s3.delete(key)
            try:
                await verify(source, dest, local, s3)
            except ToolError as exc:
                message = str(exc)
            else:
                raise AssertionError("verification passed a damaged copy")
            assert "messages: 5000 rows in SQLite, 4999 in PostgreSQL" in message
            assert "not gap-free" in message and "g:1" in message
            assert f"1 blob(s) missing or not hashing to their key, e.g. ['{key}']" in message
        finally:
            await source.dispose()
            await dest.dispose()
            await s3.close()
    finally:
        s3server.release()
