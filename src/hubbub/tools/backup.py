"""``hubbub admin backup`` and ``hubbub admin restore`` (docs/operations.md, "Backup and restore").

A backup is a directory:
- ``hubbub.db``: the SQLite database, copied with SQLite's online backup API in one step. The database runs
  in WAL mode, so that step reads one consistent snapshot while the node goes on writing (writers are never
  blocked; only the WAL checkpoint waits for it). Everything acknowledged before the snapshot is in it, with
  its seq, and the snapshot is a committed state: every conversation's seqs are gap-free in it.
- ``blobs/``: the blob directory, copied **after** the snapshot. Blobs are immutable and content-addressed,
  and the collector deletes only blobs no upload has named for ``blob_gc_grace_s``, so every blob the
  snapshot's uploads name is still there to copy. The copy is then checked against the snapshot: every blob
  an upload names must be in it with its size, or the backup fails (and leaves nothing behind).
- ``jwt-secret`` (if the data directory has one: restored tokens stay valid) and ``manifest.json`` (what was
  copied, row counts, the database's SHA-256).
It is built in a hidden sibling directory and renamed into place at the end: a backup that fails part way
leaves nothing that looks like a backup.

PostgreSQL installs back up with ``pg_dump`` (one consistent snapshot, like the SQLite step above) and the
blob store separately (see docs/operations.md); ``backup_postgres`` does exactly that when ``pg_dump`` is
installed, writing ``hubbub.pgdump`` instead of ``hubbub.db``.

A restore checks the manifest and the database's hash, refuses a data directory that holds anything unless
forced, stages everything beside the target and swaps it in with renames; with ``--force`` the old data
directory is kept aside (``<dir>.before-restore-<time>``), never deleted.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hubbub.tools import ToolError

FORMAT = 1
Progress = Callable[[str, int, int], None]


@dataclass
class BackupReport:
    path: str
    engine: str
    #: Milliseconds since the epoch when the database snapshot was taken: everything acknowledged before it
    #: is in the backup.
    snapshot_at: int
    db_bytes: int
    blobs: int
    blob_bytes: int
    seconds: float
    tables: dict[str, int] = field(default_factory=dict)


def _quiet(_what: str, _done: int, _total: int) -> None:
    pass


def _fresh_destination(dest: Path) -> Path:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ToolError(f"{dest} exists and is not empty: give a new directory for the backup")
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = dest.parent / f".{dest.name}.partial-{secrets.token_hex(4)}"
    work.mkdir()
    return work


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _blob_files(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.relative_to(root).parts]


def _copy_blobs(src: Path, dst: Path, progress: Progress) -> tuple[int, int]:
    files = _blob_files(src)
    total_bytes = 0
    for i, f in enumerate(files, 1):
        target = dst / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, target)
        total_bytes += f.stat().st_size
        if i % 200 == 0 or i == len(files):
            progress("blobs", i, len(files))
    return len(files), total_bytes


def _named_blobs(db: sqlite3.Connection) -> dict[str, int]:
    """Blob key -> size of every blob an upload of the snapshot names (original or thumbnail)."""
    rows = db.execute(
        "SELECT b.key, b.size FROM blobs b WHERE EXISTS (SELECT 1 FROM uploads u WHERE u.blob = b.key "
        "OR u.thumb = b.key)"
    )
    return {key: size for key, size in rows}


def _blob_path(root: Path, key: str) -> Path:
    return root / key[0:2] / key[2:4] / key


def _counts(db: sqlite3.Connection) -> dict[str, int]:
    names = [
        r[0]
        for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")
    ]
    return {n: int(db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]) for n in sorted(names)}


def backup_sqlite(data_dir: Path, blob_dir: Path, dest: Path, progress: Progress = _quiet) -> BackupReport:
    """Back up an embedded install (see the module docstring). Safe while the node runs."""
    started = time.monotonic()
    db_path = data_dir / "hubbub.db"
    if not db_path.is_file():
        raise ToolError(f"no database at {db_path}: is --data-dir the node's data directory?")
    work = _fresh_destination(dest)
    try:
        progress("database", 0, 1)
        snapshot_at = int(time.time() * 1000)
        source = sqlite3.connect(db_path, timeout=30)
        target = sqlite3.connect(work / "hubbub.db")
        try:
            # pages=-1: the whole database in one step, from one read transaction (one snapshot). In steps,
            # any write by the node between two steps would restart the copy, for ever under steady traffic.
            source.backup(target, pages=-1)
        finally:
            target.close()
            source.close()
        progress("database", 1, 1)
        blobs, blob_bytes = _copy_blobs(blob_dir, work / "blobs", progress)
        snap = sqlite3.connect(work / "hubbub.db")
        try:
            if (check := snap.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
                raise ToolError(f"the copied database fails its integrity check: {check}")
            missing = [
                key
                for key, size in _named_blobs(snap).items()
                if not _blob_path(work / "blobs", key).is_file()
                or _blob_path(work / "blobs", key).stat().st_size != size
            ]
            if missing:
                raise ToolError(
                    f"{len(missing)} blob(s) named by uploads are missing from {blob_dir} (first: {missing[0]}); "
                    "the backup would not restore them"
                )
            tables = _counts(snap)
        finally:
            snap.close()
        secret = data_dir / "jwt-secret"
        if secret.is_file():
            shutil.copy2(secret, work / "jwt-secret")
        report = BackupReport(
            path=str(dest),
            engine="sqlite",
            snapshot_at=snapshot_at,
            db_bytes=(work / "hubbub.db").stat().st_size,
            blobs=blobs,
            blob_bytes=blob_bytes,
            seconds=0.0,
            tables=tables,
        )
        _write_manifest(work, report, {"sha256": _sha256(work / "hubbub.db"), "file": "hubbub.db"})
        _publish(work, dest)
        report.seconds = round(time.monotonic() - started, 3)
        return report
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def backup_postgres(
    url: str, blob_dir: Path | None, dest: Path, pg_dump: str = "pg_dump", progress: Progress = _quiet
) -> BackupReport:
    """``pg_dump`` in its custom format (one snapshot), then the local blob directory if there is one (an S3
    bucket is backed up by the bucket's own versioning or replication: docs/operations.md)."""
    started = time.monotonic()
    if shutil.which(pg_dump) is None and not Path(pg_dump).is_file():
        raise ToolError(
            "pg_dump is not installed: install the PostgreSQL client tools, or give --pg-dump PATH"
        )
    work = _fresh_destination(dest)
    try:
        progress("database", 0, 1)
        snapshot_at = int(time.time() * 1000)
        plain = _libpq_url(url)
        done = subprocess.run(
            [pg_dump, "--format=custom", "--no-owner", f"--file={work / 'hubbub.pgdump'}", plain],
            capture_output=True,
        )
        if done.returncode != 0:
            raise ToolError(f"pg_dump failed: {done.stderr.decode(errors='replace').strip()}")
        progress("database", 1, 1)
        blobs = blob_bytes = 0
        if blob_dir is not None:
            blobs, blob_bytes = _copy_blobs(blob_dir, work / "blobs", progress)
        report = BackupReport(
            path=str(dest),
            engine="postgresql",
            snapshot_at=snapshot_at,
            db_bytes=(work / "hubbub.pgdump").stat().st_size,
            blobs=blobs,
            blob_bytes=blob_bytes,
            seconds=0.0,
        )
        _write_manifest(work, report, {"sha256": _sha256(work / "hubbub.pgdump"), "file": "hubbub.pgdump"})
        _publish(work, dest)
        report.seconds = round(time.monotonic() - started, 3)
        return report
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def _libpq_url(url: str) -> str:
    """A SQLAlchemy URL as libpq tools take it."""
    scheme, _, rest = url.partition("://")
    return f"postgresql://{rest}" if scheme.startswith("postgres") else url


def _write_manifest(work: Path, report: BackupReport, db: dict[str, str]) -> None:
    manifest = {"format": FORMAT, "database": db, **asdict(report)}
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _publish(work: Path, dest: Path) -> None:
    if dest.exists():
        dest.rmdir()  # checked empty above
    os.replace(work, dest)


# -- restore --------------------------------------------------------------------------------------------
@dataclass
class RestoreReport:
    engine: str
    target: str
    blobs: int
    seconds: float
    #: Where the previous data directory was moved (``--force``), or "".
    kept_aside: str = ""


def read_manifest(src: Path) -> dict[str, object]:
    path = src / "manifest.json"
    if not path.is_file():
        raise ToolError(f"{src} is not a Hubbub backup (no manifest.json)")
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        raise ToolError(f"{src}: backup format {manifest.get('format')!r}, this Hubbub reads {FORMAT}")
    return dict(manifest)


def _check_hash(src: Path, manifest: dict[str, object]) -> Path:
    db = manifest["database"]
    assert isinstance(db, dict)
    path = src / str(db["file"])
    if not path.is_file() or _sha256(path) != db["sha256"]:
        raise ToolError(f"{path} is missing or does not match the manifest's SHA-256: the backup is damaged")
    return path


def restore_sqlite(
    src: Path, data_dir: Path, force: bool = False, progress: Progress = _quiet
) -> RestoreReport:
    """Restore a SQLite backup into ``data_dir`` (the node must be stopped). Refuses a non-empty data
    directory unless ``force``; then the old one is kept aside, not deleted."""
    started = time.monotonic()
    manifest = read_manifest(src)
    if manifest.get("engine") != "sqlite":
        raise ToolError(
            f"{src} is a {manifest.get('engine')} backup: restore it with pg_restore (docs/operations.md)"
        )
    data_dir = data_dir.resolve()
    if data_dir.exists() and any(data_dir.iterdir()) and not force:
        raise ToolError(
            f"{data_dir} is not empty: restore into an empty directory, or add --force (the current one is kept aside)"
        )
    db = _check_hash(src, manifest)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    stage = data_dir.parent / f".{data_dir.name}.restoring-{secrets.token_hex(4)}"
    stage.mkdir()
    try:
        progress("database", 0, 1)
        shutil.copy2(db, stage / "hubbub.db")
        check = sqlite3.connect(stage / "hubbub.db")
        try:
            if (ok := check.execute("PRAGMA integrity_check").fetchone()[0]) != "ok":
                raise ToolError(f"the restored database fails its integrity check: {ok}")
        finally:
            check.close()
        progress("database", 1, 1)
        blobs, _ = _copy_blobs(src / "blobs", stage / "blobs", progress)
        if (src / "jwt-secret").is_file():
            shutil.copy2(src / "jwt-secret", stage / "jwt-secret")
            os.chmod(stage / "jwt-secret", 0o600)
        aside = ""
        if data_dir.exists():
            if any(data_dir.iterdir()):
                aside = f"{data_dir}.before-restore-{time.strftime('%Y%m%d-%H%M%S')}"
                os.replace(data_dir, aside)
            else:
                data_dir.rmdir()
        os.replace(stage, data_dir)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return RestoreReport(
        engine="sqlite",
        target=str(data_dir),
        blobs=blobs,
        seconds=round(time.monotonic() - started, 3),
        kept_aside=aside,
    )


def restore_postgres(
    src: Path,
    url: str,
    blob_dir: Path | None,
    force: bool = False,
    pg_restore: str = "pg_restore",
    progress: Progress = _quiet,
) -> RestoreReport:
    """Restore a ``pg_dump`` backup into the database at ``url`` (which must hold no Hubbub tables unless
    ``force``: then they are dropped and recreated from the dump), and its blobs into ``blob_dir``."""
    started = time.monotonic()
    manifest = read_manifest(src)
    if manifest.get("engine") != "postgresql":
        raise ToolError(f"{src} is a {manifest.get('engine')} backup: restore it with --data-dir")
    dump = _check_hash(src, manifest)
    plain = _libpq_url(url)
    if not force and _pg_has_tables(plain, pg_restore):
        raise ToolError(
            "the target database already has Hubbub tables: use an empty database, or add --force"
        )
    if blob_dir is not None and blob_dir.exists() and _blob_files(blob_dir) and not force:
        raise ToolError(f"{blob_dir} is not empty: use an empty blob directory, or add --force")
    progress("database", 0, 1)
    args = [pg_restore, "--no-owner", "--single-transaction", "--exit-on-error", f"--dbname={plain}"]
    if force:
        args[1:1] = ["--clean", "--if-exists"]
    done = subprocess.run([*args, str(dump)], capture_output=True)
    if done.returncode != 0:
        raise ToolError(
            f"pg_restore failed (nothing was restored): {done.stderr.decode(errors='replace').strip()}"
        )
    progress("database", 1, 1)
    blobs = 0
    if blob_dir is not None and (src / "blobs").is_dir():
        blobs, _ = _copy_blobs(src / "blobs", blob_dir, progress)
    return RestoreReport(
        engine="postgresql", target="(database)", blobs=blobs, seconds=round(time.monotonic() - started, 3)
    )


def _pg_has_tables(plain_url: str, pg_restore: str) -> bool:
    psql = str(Path(pg_restore).with_name("psql")) if os.sep in pg_restore else "psql"
    done = subprocess.run(
        [
            psql,
            plain_url,
            "-qAt",
            "-c",
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'messages'",
        ],
        capture_output=True,
    )
    if done.returncode != 0:
        raise ToolError(f"cannot reach the target database: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.strip() not in (b"", b"0")
