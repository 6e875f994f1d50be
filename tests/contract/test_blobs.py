"""The BlobStore contract (engines/blobs/base.py), run against the local directory and a real S3 server, and
the media part of the storage contract (MediaStorage) on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hubbub.config import Config
from hubbub.engines.blobs.base import BlobNotFound, BlobStore
from hubbub.engines.blobs.local import LocalBlobStore
from hubbub.engines.blobs.s3 import PART, S3BlobStore
from hubbub.engines.storage.base import NewMessage, UploadRecord
from hubbub.engines.storage.sql import SqlStorage
from tests import s3server


@pytest.fixture(scope="session")
def seaweed() -> Iterator[s3server.SeaweedServer]:
    server = s3server.acquire()
    yield server
    s3server.release()


async def started_s3(server: s3server.SeaweedServer, bucket: str, prefix: str = "") -> S3BlobStore:
    """An S3 store on the test server; retries while SeaweedFS's filer is still coming up."""
    for attempt in range(60):
        store = S3BlobStore(
            endpoint=server.endpoint,
            bucket=bucket,
            access_key=s3server.ACCESS_KEY,
            secret_key=s3server.SECRET_KEY,
            prefix=prefix,
        )
        try:
            await store.start()
            return store
        except Exception:
            await store.close()
            if attempt == 59:
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


@pytest.fixture(params=["local", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStore]:
    if request.param == "local":
        blobs: BlobStore = LocalBlobStore(tmp_path / "blobs")
        await blobs.start()
    else:
        server = request.getfixturevalue("seaweed")
        blobs = await started_s3(server, "contract", prefix=uuid.uuid4().hex)
    yield blobs
    await blobs.close()


def key_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 100_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def read(store: BlobStore, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.get(key, start, end)])


async def test_put_get_exists_delete(store: BlobStore) -> None:
    data = os.urandom(300_000)
    key = key_of(data)
    assert not await store.exists(key)
    assert await store.size(key) is None
    await store.put(key, chunks_of(data), len(data))
    assert await store.exists(key)
    assert await store.size(key) == len(data)
    assert await read(store, key) == data
    await store.delete(key)
    assert not await store.exists(key)
    await store.delete(key)  # idempotent


async def test_ranges(store: BlobStore) -> None:
    data = os.urandom(600_000)
    key = key_of(data)
    await store.put(key, chunks_of(data), len(data))
    assert await read(store, key, 10, 20) == data[10:20]
    assert await read(store, key, 599_990) == data[599_990:]
    assert await read(store, key, 0, 1) == data[:1]
    assert await read(store, key, 262_000, 530_000) == data[262_000:530_000]


async def test_empty_blob(store: BlobStore) -> None:
    key = key_of(b"")
    await store.put(key, chunks_of(b""), 0)
    assert await store.size(key) == 0
    assert await read(store, key) == b""


async def test_put_again_is_harmless(store: BlobStore) -> None:
    data = b"same bytes" * 1000
    key = key_of(data)
    await asyncio.gather(*(store.put(key, chunks_of(data, 333), len(data)) for _ in range(3)))
    assert await read(store, key) == data


async def test_missing_key(store: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        await read(store, "ab" * 32)


async def test_failed_put_leaves_nothing(store: BlobStore) -> None:
    data = os.urandom(200_000)
    key = key_of(data)

    async def broken() -> AsyncIterator[bytes]:
        yield data[:100_000]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put(key, broken(), len(data))
    assert not await store.exists(key)
    with pytest.raises(ValueError):
        await store.put(key, chunks_of(data[:150_000]), len(data))  # short
    with pytest.raises(ValueError):
        await store.put(key, chunks_of(data + b"x"), len(data))  # long
    assert not await store.exists(key)
    if isinstance(store, LocalBlobStore):
        assert list(store.tmp.iterdir()) == []


async def test_multipart_sized_blob(store: BlobStore, tmp_path: Path) -> None:
    """Larger than one S3 part: exercises multipart upload, and put_file."""
    data = os.urandom(PART + 1_000_000)
    key = key_of(data)
    spool = tmp_path / "spool"
    spool.write_bytes(data)
    await store.put_file(key, spool, len(data))
    assert spool.exists()  # the source is left for its owner to remove
    assert await store.size(key) == len(data)
    assert hashlib.sha256(await read(store, key)).hexdigest() == key
    assert await read(store, key, PART - 5, PART + 5) == data[PART - 5 : PART + 5]


async def test_failed_multipart_put_leaves_nothing(store: BlobStore) -> None:
    data = os.urandom(PART + 10)
    key = key_of(data)

    async def broken() -> AsyncIterator[bytes]:
        yield data[: PART + 5]
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await store.put(key, broken(), len(data))
    assert not await store.exists(key)


@pytest.mark.parametrize("key", ["../etc/passwd", "AB" * 32, "ab/cd", "", "a" * 200, "ab.."])
async def test_keys_cannot_escape(store: BlobStore, key: str) -> None:
    with pytest.raises(ValueError):
        await store.put(key, chunks_of(b"x"), 1)
    with pytest.raises(ValueError):
        await store.size(key)


# -- the media part of the storage contract (MediaStorage), on SQLite and PostgreSQL -----------------------
@pytest.fixture(params=["sqlite", "postgresql"])
async def media_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqlStorage]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hubbub.db'}"
    else:
        pg = request.getfixturevalue("postgres_server")
        url = Config(database=pg.create_database()).database_url
    storage = SqlStorage(url)
    await storage.start()
    yield storage
    await storage.close()


def record(upload_id: str, owner: int, blob: str, now: int, size: int = 10) -> UploadRecord:
    return UploadRecord(
        id=upload_id, owner=owner, kind="image", blob=blob, thumb=None, size=size, mime="image/png",
        name="a.png", meta={"width": 1, "height": 1}, created_at=now,
    )


async def test_media_storage(media_storage: SqlStorage) -> None:
    s = media_storage
    now = 1_764_000_000_000
    a = (await s.create_user("media_a", "A", "x", now)).id
    b = (await s.create_user("media_b", "B", "x", now)).id
    c = (await s.create_user("media_c", "C", "x", now)).id
    blob = "ab" * 32
    await s.touch_blob(blob, 10, now)
    await s.touch_blob(blob, 10, now + 1)  # an upsert, not a second row
    up, other = "1" * 32, "2" * 32
    await s.create_upload(record(up, a, blob, now))
    await s.create_upload(record(other, a, blob, now, size=5))
    assert (await s.upload(up)) == record(up, a, blob, now)
    assert await s.upload("f" * 32) is None
    assert await s.upload_usage(a) == 15 and await s.upload_usage(b) == 0

    types = ("image", "file")
    conv = f"p:{min(a, b)}:{max(a, b)}"
    await s.add_upload_ref(up, a, now)
    await s.add_upload_ref(up, a, now)  # idempotent
    assert not await s.upload_in_visible_message(up, b, types)  # referenced, but no message stored yet
    msg = NewMessage(id=1, conv=conv, sender=a, cmid="m1", type="image", body={"upload": up, "size": 10},
                     ts=now, members=(a, b))
    await s.store_messages([msg])
    assert await s.upload_in_visible_message(up, b, types)
    assert await s.upload_in_visible_message(up, a, types)
    assert not await s.upload_in_visible_message(up, c, types)
    assert not await s.upload_in_visible_message(other, b, types)

    assert not await s.upload_is_avatar(other)
    await s.update_profile(c, {"avatar": other})  # someone else's upload as c's avatar: not public
    assert not await s.upload_is_avatar(other)
    await s.update_profile(a, {"avatar": other})
    assert await s.upload_is_avatar(other)

    later = now + 10**9
    assert await s.settle_upload_refs(later, types, 100) == (1, 0)
    assert await s.delete_unused_uploads(later, 100) == 0  # one is in a message, one an avatar
    await s.update_profile(a, {"avatar": None})
    assert await s.delete_unused_uploads(later, 100) == 1
    assert await s.unreferenced_blobs(later, 100) == []  # the sent upload still names it
    orphan = "cd" * 32
    await s.touch_blob(orphan, 3, now)
    assert await s.unreferenced_blobs(later, 100) == [orphan]
    assert not await s.delete_blob_row(orphan, now)  # touched since the cutoff
    assert await s.delete_blob_row(orphan, later)
    assert await s.unreferenced_blobs(later, 100) == []


async def test_quota_reservations_are_atomic(media_storage: SqlStorage) -> None:
    """Issue 12.9: concurrent reservations of one owner never hold more than the quota together (the
    PostgreSQL half runs them on separate connections: READ COMMITTED alone would let them all through)."""
    s = media_storage
    now = 1_764_000_000_000
    a = (await s.create_user("quota_a", "A", "x", now)).id
    b = (await s.create_user("quota_b", "B", "x", now)).id
    blob = "ef" * 32
    await s.touch_blob(blob, 10, now)
    await s.create_upload(record("3" * 32, a, blob, now, size=30))
    later = now + 60_000
    granted = await asyncio.gather(
        *(s.reserve_quota(f"{i:032x}", a, 20, 100, now, later) for i in range(10))
    )
    assert granted.count(True) == 3  # 30 stored + 3 x 20 reserved <= 100
    assert await s.reserve_quota("f" * 32, b, 100, 100, now, later)  # another owner's quota is their own
    held = [f"{i:032x}" for i, ok in enumerate(granted) if ok]
    # Growing a reservation counts it once; passing the quota changes nothing.
    assert await s.reserve_quota(held[0], a, 30, 100, now, later)
    assert not await s.reserve_quota(held[0], a, 31, 100, now, later)
    # Converting: the upload replaces its reservation in one transaction, checked against the quota.
    assert not await s.create_upload(record(held[1], a, blob, now, size=41), held[1], 100)
    assert await s.create_upload(record(held[1], a, blob, now, size=20), held[1], 100)
    assert await s.upload_usage(a) == 50
    await s.release_quota(held[2])
    assert await s.reserve_quota("e" * 32, a, 20, 100, now, later)  # 50 + 30 + 20
    assert not await s.reserve_quota("d" * 32, a, 1, 100, now, later)
    # Expired reservations (a crashed node's) no longer count.
    assert await s.reserve_quota("d" * 32, a, 50, 100, later, later + 1)
