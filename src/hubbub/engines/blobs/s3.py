"""Blobs in an S3-compatible object store (AWS S3, MinIO, SeaweedFS, ...), for clusters.

Uses aiobotocore (botocore's request signing and retries on aiohttp). Small blobs are one PutObject; larger
ones a multipart upload in ``PART`` pieces, so memory per upload stays bounded whatever the file size, and a
failed multipart upload is aborted (S3 never shows an object until CompleteMultipartUpload).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import TYPE_CHECKING, Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.blobs.base import CHUNK, BlobNotFound, BlobStore, check_key

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = logging.getLogger(__name__)

#: Multipart piece size: S3 needs at least 5 MiB for every part but the last.
PART = 8 * 1024 * 1024


def _missing(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound", "NoSuchBucket")


def _unavailable(exc: Exception) -> HubbubError:
    detail = type(exc).__name__
    if isinstance(exc, ClientError):
        detail += " " + str(exc.response.get("Error", {}).get("Code", ""))
    log.warning("S3 request failed: %s", exc)
    return HubbubError(Code.UNAVAILABLE, f"the blob store is unavailable: {detail}")


class S3BlobStore(BlobStore):
    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        prefix: str = "",
    ) -> None:
        self.endpoint = endpoint or None
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._credentials = (access_key or None, secret_key or None)
        self.region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise HubbubError(Code.UNAVAILABLE, "the blob store is not started")
        return self._client

    async def start(self) -> None:
        session = get_session()
        config = AioConfig(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=64,
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=self.region,
                aws_access_key_id=self._credentials[0],
                aws_secret_access_key=self._credentials[1],
                config=config,
            )
        )
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if not _missing(exc):
                raise
            await self.client.create_bucket(Bucket=self.bucket)

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, chunks: AsyncIterable[bytes], size: int) -> None:
        name = self._key(key)
        buffer = bytearray()
        upload_id: str | None = None
        parts: list[dict[str, Any]] = []
        written = 0
        try:
            async for chunk in chunks:
                written += len(chunk)
                if written > size:
                    raise ValueError(f"blob {key}: more than the declared {size} bytes")
                buffer += chunk
                while len(buffer) >= PART and written < size:
                    if upload_id is None:
                        started = await self.client.create_multipart_upload(Bucket=self.bucket, Key=name)
                        upload_id = started["UploadId"]
                    part = await self.client.upload_part(
                        Bucket=self.bucket,
                        Key=name,
                        UploadId=upload_id,
                        PartNumber=len(parts) + 1,
                        Body=bytes(buffer[:PART]),
                    )
                    parts.append({"PartNumber": len(parts) + 1, "ETag": part["ETag"]})
                    del buffer[:PART]
            if written != size:
                raise ValueError(f"blob {key}: {written} bytes instead of {size}")
            if upload_id is None:
                await self.client.put_object(Bucket=self.bucket, Key=name, Body=bytes(buffer))
                return
            if buffer:
                part = await self.client.upload_part(
                    Bucket=self.bucket,
                    Key=name,
                    UploadId=upload_id,
                    PartNumber=len(parts) + 1,
                    Body=bytes(buffer),
                )
                parts.append({"PartNumber": len(parts) + 1, "ETag": part["ETag"]})
            await self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=name,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},  # type: ignore[typeddict-item]
            )
        except BaseException as exc:
            if upload_id is not None:
                with contextlib.suppress(Exception):
                    await self.client.abort_multipart_upload(Bucket=self.bucket, Key=name, UploadId=upload_id)
            if isinstance(exc, (BotoCoreError, ClientError)):
                raise _unavailable(exc) from exc
            raise  # the source failed (the client went away, a wrong size): its own error

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        name = self._key(key)
        if end is not None and end <= start:
            return
        extra: dict[str, Any] = {}
        if start or end is not None:
            extra["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=name, **extra)
        except ClientError as exc:
            if _missing(exc):
                raise BlobNotFound(key) from exc
            raise _unavailable(exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise _unavailable(exc) from exc
        async with response["Body"] as body:
            async for chunk in body.iter_chunks(CHUNK):
                yield chunk

    async def size(self, key: str) -> int | None:
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise _unavailable(exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise _unavailable(exc) from exc
        return int(head["ContentLength"])

    async def delete(self, key: str) -> None:
        try:
            await self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as exc:
            if not _missing(exc):
                raise _unavailable(exc) from exc
        except (BotoCoreError, OSError) as exc:
            raise _unavailable(exc) from exc
