"""Backup and restore end to end: a backup taken under traffic restores every acknowledged message, gap-free;
PostgreSQL through pg_dump; bad input (restore onto a non-empty data dir, a damaged backup) is refused with
nothing changed."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hubbub.cli import app
from hubbub.client import HubbubClient
from hubbub.core.clock import now_ms
from hubbub.tools import ToolError
from hubbub.tools.backup import backup_postgres, backup_sqlite, restore_postgres, restore_sqlite
from tests import servers
from tests.conftest import PASSWORD, base_url
from tests.lifecycle.helpers import upload, user

LIFE = {"retention_interval_s": 0}


async def _until(predicate: Any, timeout: float = 30.0) -> None:
    """Traffic is measured in messages, not seconds: a loaded machine sends fewer per second."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the traffic did not get going"
        await asyncio.sleep(0.02)


def _gap_free(db: Path) -> dict[str, list[int]]:
    conn = sqlite3.connect(db)
    try:
        seqs: dict[str, list[int]] = {}
        for conv, seq in conn.execute("SELECT conv, seq FROM messages ORDER BY conv, seq"):
            seqs.setdefault(conv, []).append(seq)
        tops = dict(conn.execute("SELECT conv, max_seq FROM conversations"))
    finally:
        conn.close()
    for conv, top in tops.items():
        assert seqs.get(conv, []) == list(range(1, top + 1)), f"{conv} is not gap-free"
    return seqs


async def test_backup_under_traffic_then_restore(make_node, tmp_path):
    node = await make_node(**LIFE)
    a, b, c = [await user(node, n) for n in ("ann", "bob", "cat")]
    await a.befriend(b)
    await b.befriend(c)
    await a.befriend(c)
    group = await a.api("POST", "/api/v1/groups", {"name": "team", "members": [b.user_id, c.user_id]})
    up = await upload(a, b"a file that must survive the restore\n")
    await a.send({"msg_type": "file", "body": {"upload": up["upload"]}}, conv=group["conv"])

    acked: list[tuple[dict[str, Any], int]] = []
    stop = asyncio.Event()

    async def traffic(client: HubbubClient, **dest: Any) -> None:
        i = 0
        while not stop.is_set():
            ack = await client.send_text(f"m{i}", **dest)
            acked.append((ack, now_ms()))
            i += 1

    tasks = [
        asyncio.create_task(traffic(a, to=b.user_id)),
        asyncio.create_task(traffic(b, to=c.user_id)),
        asyncio.create_task(traffic(a, conv=group["conv"])),
        asyncio.create_task(traffic(c, conv=group["conv"])),
    ]
    await _until(lambda: len(acked) >= 30)
    started = now_ms()
    before = [ack for ack, _ in acked]
    dest = tmp_path / "backup"
    data = Path(node.config.data_dir)
    report = await asyncio.to_thread(backup_sqlite, data, data / "blobs", dest)
    after = len(acked)
    await _until(lambda: len(acked) >= after + 10)  # traffic goes on after the snapshot too
    stop.set()
    await asyncio.gather(*tasks)
    assert report.snapshot_at >= started and report.blobs >= 1
    assert len(acked) > len(before) > 20

    # Bad input: a backup into a non-empty directory, a restore onto a non-empty data dir.
    with pytest.raises(ToolError, match="not empty"):
        backup_sqlite(data, data / "blobs", dest)
    with pytest.raises(ToolError, match="not empty"):
        restore_sqlite(dest, data)
    restored = tmp_path / "restored"
    (restored / "keep").mkdir(parents=True)
    with pytest.raises(ToolError, match="not empty"):
        restore_sqlite(dest, restored)
    assert [p.name for p in restored.iterdir()] == ["keep"]  # nothing half-done
    done = restore_sqlite(dest, restored, force=True)
    assert done.kept_aside and (Path(done.kept_aside) / "keep").is_dir()

    seqs = _gap_free(restored / "hubbub.db")
    for ack in before:  # every message acknowledged before the backup began is there, with its seq
        assert ack["seq"] in seqs[ack["conv"]], ack
    # The restored install serves: the same users and password, tokens of the same secret, the file's bytes.
    twin = await make_node(**LIFE, data_dir=str(restored), jwt_secret="")
    again = HubbubClient(base_url(twin))
    await again.login(a.user["username"], PASSWORD)  # type: ignore[index]
    page = await again.api("GET", f"/api/v1/conversations/{group['conv']}/messages", limit=1)
    assert page["messages"][-1]["seq"] == len(seqs[group["conv"]])
    async with again.http.get(
        f"{again.base_url}/api/v1/uploads/{up['upload']}",
        headers={"Authorization": f"Bearer {again.access_token}"},
    ) as resp:
        assert await resp.read() == b"a file that must survive the restore\n"
    for client in (a, b, c, again):
        await client.close()


def test_damaged_or_foreign_backups_are_refused(tmp_path):
    with pytest.raises(ToolError, match="not a Hubbub backup"):
        restore_sqlite(tmp_path, tmp_path / "data")
    runner = CliRunner()
    out = runner.invoke(
        app, ["admin", "--data-dir", str(tmp_path / "nothing"), "backup", str(tmp_path / "b")]
    )
    assert out.exit_code == 1 and "no database" in out.output
    assert not (tmp_path / "b").exists()


async def test_cli_backup_and_restore_and_a_damaged_copy(make_node, tmp_path):
    node = await make_node(**LIFE)
    a = await user(node)
    b = await user(node)
    await a.befriend(b)
    await a.send_text("kept", to=b.user_id)
    runner = CliRunner()
    env = {"HUBBUB_JWT_SECRET": "x" * 32}
    out = runner.invoke(
        app, ["admin", "--data-dir", node.config.data_dir, "backup", str(tmp_path / "bk")], env=env
    )
    assert out.exit_code == 0, out.output
    assert "backed up the sqlite database" in out.output
    target = tmp_path / "fresh"
    out = runner.invoke(
        app, ["admin", "--data-dir", node.config.data_dir, "restore", str(tmp_path / "bk")], env=env
    )
    assert out.exit_code == 1 and "not empty" in out.output and "--force" in out.output
    out = runner.invoke(app, ["admin", "--data-dir", str(target), "restore", str(tmp_path / "bk")], env=env)
    assert out.exit_code == 0, out.output
    _gap_free(target / "hubbub.db")
    shutil.copytree(tmp_path / "bk", tmp_path / "bad")
    with (tmp_path / "bad" / "hubbub.db").open("r+b") as f:
        f.seek(200)
        f.write(b"\xff" * 16)
    out = runner.invoke(
        app, ["admin", "--data-dir", str(tmp_path / "other"), "restore", str(tmp_path / "bad")], env=env
    )
    assert out.exit_code == 1 and "damaged" in out.output
    assert not (tmp_path / "other").exists()
    for client in (a, b):
        await client.close()


async def test_postgres_backup_and_restore(make_node, tmp_path, postgres_server):
    url = postgres_server.create_database("bk")
    node = await make_node(**LIFE, database=url)
    a = await user(node)
    b = await user(node)
    await a.befriend(b)
    up = await upload(a, b"pg blob\n")
    await a.send({"msg_type": "file", "body": {"upload": up["upload"]}}, to=b.user_id)
    acks = [await a.send_text(f"m{i}", to=b.user_id) for i in range(20)]
    blobs = Path(node.config.data_dir) / "blobs"
    report = await asyncio.to_thread(
        backup_postgres, node.config.database_url, blobs, tmp_path / "pgb", servers._pg_binary("pg_dump")
    )
    assert report.engine == "postgresql" and report.blobs == 1
    restore_to = postgres_server.create_database("rs")
    pg_restore = servers._pg_binary("pg_restore")
    done = await asyncio.to_thread(
        restore_postgres, tmp_path / "pgb", restore_to, tmp_path / "rblobs", False, pg_restore
    )
    assert done.blobs == 1
    with pytest.raises(ToolError, match="already has Hubbub tables"):
        restore_postgres(tmp_path / "pgb", restore_to, None, False, pg_restore)
    rows = postgres_server.psql(
        "SELECT string_agg(seq::text, ',' ORDER BY seq) FROM messages", database=restore_to.rsplit("/", 1)[1]
    )
    assert rows.strip() == ",".join(str(s) for s in range(1, acks[-1]["seq"] + 1))
    twin = await make_node(
        **LIFE,
        database=restore_to,
        blob_dir=str(tmp_path / "rblobs"),
        data_dir=str(tmp_path / "twin"),
        jwt_secret="",
    )
    again = HubbubClient(base_url(twin))
    await again.login(b.user["username"], PASSWORD)  # type: ignore[index]
    async with again.http.get(
        f"{again.base_url}/api/v1/uploads/{up['upload']}",
        headers={"Authorization": f"Bearer {again.access_token}"},
    ) as resp:
        assert await resp.read() == b"pg blob\n"
    for client in (a, b, again):
        await client.close()


async def test_cli_retention_purge_export_and_delete_user(make_node, tmp_path):
    import zipfile

    node = await make_node(**LIFE)
    a = await user(node)
    b = await user(node)
    await a.befriend(b)
    ack = await a.send_text("for the record", to=b.user_id)
    runner = CliRunner()
    env = {"HUBBUB_JWT_SECRET": "z" * 32}

    def admin(*args: str) -> Any:
        return runner.invoke(app, ["admin", "--data-dir", node.config.data_dir, *args], env=env)

    out = await asyncio.to_thread(admin, "retention", ack["conv"], "--days", "-3")
    assert out.exit_code == 1 and "invalid_field" in out.output
    out = await asyncio.to_thread(admin, "retention", ack["conv"], "--days", "30")
    assert out.exit_code == 0 and "kept 30 days (its own policy)" in out.output, out.output
    out = await asyncio.to_thread(admin, "purge")
    assert out.exit_code == 0 and "purged 0 message(s)" in out.output, out.output
    zip_path = tmp_path / "conv.zip"
    out = await asyncio.to_thread(admin, "export-conversation", ack["conv"], str(zip_path))
    assert out.exit_code == 0, out.output
    assert b"for the record" in zipfile.ZipFile(zip_path).read("messages.jsonl")
    out = await asyncio.to_thread(admin, "export-conversation", ack["conv"], str(zip_path))
    assert out.exit_code == 1 and "exists" in out.output
    out = await asyncio.to_thread(admin, "delete-user", str(b.user_id), "--yes")
    assert out.exit_code == 0 and f"closed the account of user {b.user_id}" in out.output, out.output
    assert (await a.api("GET", f"/api/v1/users/{b.user_id}"))["deleted"] is True
    for client in (a, b):
        await client.close()


async def test_postgres_backup_under_traffic(make_node, tmp_path, postgres_server):
    url = postgres_server.create_database("bkt")
    node = await make_node(**LIFE, database=url)
    a, b = await user(node), await user(node)
    await a.befriend(b)
    group = await a.api("POST", "/api/v1/groups", {"name": "busy", "members": [b.user_id]})
    acked: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def traffic(client: HubbubClient, **dest: Any) -> None:
        while not stop.is_set():
            acked.append(await client.send_text("x", **dest))

    tasks = [
        asyncio.create_task(traffic(a, to=b.user_id)),
        asyncio.create_task(traffic(b, conv=group["conv"])),
    ]
    await _until(lambda: len(acked) >= 30)
    before = list(acked)
    await asyncio.to_thread(
        backup_postgres, node.config.database_url, None, tmp_path / "pgt", servers._pg_binary("pg_dump")
    )
    after = len(acked)
    await _until(lambda: len(acked) >= after + 10)
    stop.set()
    await asyncio.gather(*tasks)
    target = postgres_server.create_database("rst")
    await asyncio.to_thread(
        restore_postgres, tmp_path / "pgt", target, None, False, servers._pg_binary("pg_restore")
    )
    name = target.rsplit("/", 1)[1]
    holes = postgres_server.psql(
        "SELECT count(*) FROM conversations c WHERE (SELECT count(*) FROM messages m WHERE m.conv = c.conv) "
        "<> c.max_seq OR (SELECT coalesce(max(seq), 0) FROM messages m WHERE m.conv = c.conv) <> c.max_seq",
        database=name,
    )
    assert holes.strip() == "0"
    have = postgres_server.psql("SELECT string_agg(conv || '#' || seq, ',') FROM messages", database=name)
    present = set(have.strip().split(","))
    assert len(before) > 20
    assert all(f"{ack['conv']}#{ack['seq']}" in present for ack in before)
    for client in (a, b):
        await client.close()
