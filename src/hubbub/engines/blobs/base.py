"""The blob store interface: immutable byte strings under content-derived keys.

Contract (tests/contract/test_blobs.py runs it against the local directory and a real S3 server):
- ``put`` is atomic: a key is either absent or holds every byte that was put. A put that fails part way (the
  source raised, the size did not match, the store went away) leaves nothing under the key and no partial
  object behind. Putting a key that already exists replaces it with the same bytes (keys are content hashes),
  so concurrent puts of one key are harmless.
- ``get`` streams the bytes of ``[start, end)`` (``end`` None: to the end) in chunks of bounded size, never
  the whole object in memory; a missing key raises :class:`BlobNotFound` before the first chunk.
- ``delete`` is idempotent; ``size`` is None for a missing key.
- A store that cannot be reached raises ``HubbubError(Code.UNAVAILABLE)``.
Keys are validated by :func:`check_key` (lower-case hex, ``/``, ``.``), so no key can name a path outside
the store.
"""

from __future__ import annotations

import abc
import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path

CHUNK = 256 * 1024
_KEY = re.compile(r"^[0-9a-z]{2,128}(\.[a-z0-9]{1,16})?$")


class BlobNotFound(LookupError):
    """No blob under this key."""


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError(f"invalid blob key {key!r}")
    return key


async def file_chunks(path: Path, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """Read a local file in chunks off the event loop."""
    f = await asyncio.to_thread(path.open, "rb")
    try:
        while data := await asyncio.to_thread(f.read, chunk):
            yield data
    finally:
        f.close()


class BlobStore(abc.ABC):
    """Content-addressed byte storage. See the module contract."""

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect (and create the bucket or directory if it is missing)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abc.abstractmethod
    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int) -> None:
        """Store exactly ``size`` bytes from ``chunks`` under ``key``, atomically; raise ValueError if the
        source yields a different number of bytes (nothing is then stored)."""

    async def put_file(self, key: str, path: Path, size: int) -> None:
        """Store a local file (the upload spool) under ``key``; the file is left in place. Stores on the same
        file system override this with a cheaper link."""
        await self.put(key, file_chunks(path), size)

    @abc.abstractmethod
    def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)``; raises BlobNotFound (on first iteration) if the key is missing."""

    @abc.abstractmethod
    async def size(self, key: str) -> int | None:
        """The blob's length in bytes, or None if there is no such blob."""

    async def exists(self, key: str) -> bool:
        return await self.size(key) is not None

    @abc.abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; no error if it is already gone."""
