"""Blobs in a local directory (the embedded default; a shared directory works for a cluster too).

Layout: ``<root>/<k[0:2]>/<k[2:4]>/<key>``; writes go to ``<root>/.tmp`` first and are renamed into place,
so a reader never sees a partial file and a crash leaves only ``.tmp`` litter (removed at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

from hubbub.engines.blobs.base import CHUNK, BlobNotFound, BlobStore, check_key

#: Temporary files older than this at start-up are litter from a crash (a live write is never this old).
_STALE_TMP_S = 3600


class LocalBlobStore(BlobStore):
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()
        self.tmp = self.root / ".tmp"

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)

    def _prepare(self) -> None:
        self.tmp.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - _STALE_TMP_S
        for entry in self.tmp.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

    def path(self, key: str) -> Path:
        check_key(key)
        return self.root / key[0:2] / key[2:4] / key

    def _tmp_path(self) -> Path:
        return self.tmp / secrets.token_hex(12)

    def _publish(self, tmp: Path, key: str) -> None:
        final = self.path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int) -> None:
        check_key(key)
        tmp = self._tmp_path()
        f = await asyncio.to_thread(tmp.open, "xb")
        try:
            written = 0
            async for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise ValueError(f"blob {key}: more than the declared {size} bytes")
                await asyncio.to_thread(f.write, chunk)
            if written != size:
                raise ValueError(f"blob {key}: {written} bytes instead of {size}")
            await asyncio.to_thread(f.close)
            await asyncio.to_thread(self._publish, tmp, key)
        except BaseException:
            f.close()
            tmp.unlink(missing_ok=True)
            raise

    async def put_file(self, key: str, path: Path, size: int) -> None:
        await asyncio.to_thread(self._put_file, key, path, size)

    def _put_file(self, key: str, path: Path, size: int) -> None:
        if path.stat().st_size != size:
            raise ValueError(f"blob {key}: file is not {size} bytes")
        tmp = self._tmp_path()
        try:
            try:
                os.link(path, tmp)  # same file system: no copy
            except OSError:
                shutil.copyfile(path, tmp)
            self._publish(tmp, key)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        try:
            f = await asyncio.to_thread(self.path(key).open, "rb")
        except FileNotFoundError as exc:
            raise BlobNotFound(key) from exc
        try:
            if start:
                f.seek(start)
            remaining = None if end is None else end - start
            while remaining is None or remaining > 0:
                n = CHUNK if remaining is None else min(CHUNK, remaining)
                data = await asyncio.to_thread(f.read, n)
                if not data:
                    break
                if remaining is not None:
                    remaining -= len(data)
                yield data
        finally:
            f.close()

    async def size(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(key).stat)).st_size
        except FileNotFoundError:
            return None

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path(key).unlink, missing_ok=True)
