"""Uploads and downloads of images, files, voice and video; the blobs behind them and their collector.

Docs: docs/media.md. The rules:
- An upload is streamed to a spool file with a running SHA-256, never held in memory, and refused as soon as it
  passes its kind's size limit or the owner's quota (before any byte is read when Content-Length says so).
  The quota is reserved before the body streams (:class:`_Quota`), so parallel uploads cannot pass it.
- Its type is sniffed from its bytes (``media_probe``); images are stripped of all metadata, oriented and
  thumbnailed in the image pool, voice and video get a duration in the probe pool: both pools are this
  service's own, bounded, and apart from the default executor that password hashing uses.
- Blobs are content-addressed (SHA-256 of the stored bytes), stored once whoever uploads them; each upload is a
  row naming its blob. A failed upload leaves no blob, no row and no spool file.
- An avatar is an image upload its editor may read (:meth:`MediaService.check_avatar`).
- Who may download: the uploader; anyone logged in for an avatar its uploader set; otherwise a member of a conversation in which
  a message naming the upload was stored (from the point they joined). Everyone else gets 404, as for an
  unknown id, so ids cannot be probed.
- The collector (every ``blob_gc_interval_s``) settles message references, deletes uploads no message or
  avatar uses once older than ``blob_gc_grace_s``, then blobs no upload names.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.periodic import Periodic
from hubbub.engines.blobs.base import BlobNotFound, BlobStore
from hubbub.engines.storage.base import Storage, UploadRecord
from hubbub.services import media_probe as probe
from hubbub.services.content import MEDIA_TYPES
from hubbub.services.social_rules import claimed_duration as check_claimed_duration

log = logging.getLogger(__name__)
T = TypeVar("T")

#: An upload's kind is the message type that carries it; the one list lives with the content rules.
KINDS = MEDIA_TYPES
_ID = re.compile(r"^[0-9a-f]{32}$")
#: Spool writes are batched to this size: one thread hop per MiB, not per network chunk.
_WRITE_BATCH = 1024 * 1024
#: Room for multipart boundaries and part headers when only the whole request's length is known.
MULTIPART_SLACK = 64 * 1024
_CAPTION_MAX = 1024
#: Spool files older than this at start-up were left by a crash.
_STALE_SPOOL_S = 3600
#: A quota reservation grows ahead of the body by this much: one SQL statement per step.
_RESERVE_STEP = 4 * 1024 * 1024
#: A reservation not grown for this long is ignored and deleted (its node crashed mid-upload); a live upload
#: refreshes it at every step, and the processing after the last step takes far less.
_RESERVATION_TTL_S = _STALE_SPOOL_S


class Thumb(msgspec.Struct, kw_only=True):
    width: int
    height: int


class UploadView(msgspec.Struct, kw_only=True, omit_defaults=True):
    """An upload as clients see it, in the upload reply and in the body of the message that carries it."""

    upload: str
    kind: str
    name: str
    size: int
    mime: str
    width: int | None = None
    height: int | None = None
    #: Present when ``GET /api/v1/uploads/{id}/thumb`` has a thumbnail (WebP, longest side 256 px).
    thumb: Thumb | None = None
    #: Seconds, for voice and video, when the container says.
    duration: float | None = None


class Usage(msgspec.Struct, kw_only=True):
    used: int
    quota: int


@dataclass(frozen=True)
class Download:
    key: str
    size: int
    mime: str
    name: str
    #: Images are shown in place; everything else is a download of opaque bytes.
    inline: bool


@dataclass
class GcReport:
    confirmed_refs: int = 0
    dropped_refs: int = 0
    uploads: int = 0
    blobs: int = 0


def view_of(record: UploadRecord) -> UploadView:
    meta = record.meta
    thumb = meta.get("thumb")
    return UploadView(
        upload=record.id,
        kind=record.kind,
        name=record.name,
        size=record.size,
        mime=record.mime,
        width=meta.get("width"),
        height=meta.get("height"),
        thumb=Thumb(width=thumb["width"], height=thumb["height"]) if thumb else None,
        duration=meta.get("duration"),
    )


class MediaService:
    def __init__(self, config: Config, storage: Storage, blobs: BlobStore) -> None:
        self.config = config
        self.storage = storage
        self.blobs = blobs
        self.spool = Path(config.data_dir) / "spool"
        self.limits = {
            "image": config.max_image_bytes,
            "file": config.max_file_bytes,
            "voice": config.max_voice_bytes,
            "video": config.max_video_bytes,
        }
        self._gc = Periodic("blob-gc", max(config.blob_gc_interval_s, 1.0), self._gc_round, jitter=0.1)
        # Their own bounded pools, not the default executor (which password hashing shares): N hostile
        # uploads wait for these threads instead of taking every thread the node has.
        self._images = ThreadPoolExecutor(config.image_decode_threads, thread_name_prefix="hubbub-image")
        self._probes = ThreadPoolExecutor(config.media_probe_threads, thread_name_prefix="hubbub-probe")
        self.image_limits = probe.ImageLimits(
            config.max_image_pixels, config.max_image_pixels_per_byte, config.thumb_px
        )
        #: What the media parsers have done on this node, in all (for tests, benchmarks and metrics).
        self.probe_work = probe.Work()

    # -- lifecycle -------------------------------------------------------------------------------------
    async def start(self) -> None:
        await asyncio.to_thread(self._prepare_spool)
        if self.config.blob_gc_interval_s > 0:
            self._gc.start()

    def _prepare_spool(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        cutoff = time.time() - _STALE_SPOOL_S
        for entry in self.spool.iterdir():
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    entry.unlink()

    async def close(self) -> None:
        await self._gc.stop()
        self._images.shutdown(wait=False, cancel_futures=True)
        self._probes.shutdown(wait=False, cancel_futures=True)

    async def _run(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    # -- upload ----------------------------------------------------------------------------------------
    def check_declared(self, kind: str | None, declared: int | None, slack: int = 0) -> None:
        """Refuse before reading the body when its announced length is already over the limit."""
        if kind is not None and kind not in KINDS:
            raise invalid("kind", f"one of {list(KINDS)}")
        limit = self.limits[kind] if kind else max(self.limits.values())
        if declared is not None and declared - slack > limit:
            raise HubbubError(Code.TOO_LARGE, f"a {kind or 'an upload'} may be at most {limit} bytes")

    async def usage(self, owner: int) -> Usage:
        return Usage(used=await self.storage.upload_usage(owner), quota=self.config.upload_quota_bytes)

    async def upload(
        self,
        owner: int,
        kind: str,
        name: str | None,
        source: AsyncIterator[bytes],
        declared: int | None = None,
        claimed_duration: float | None = None,
    ) -> UploadView:
        """Stream ``source`` into storage as ``owner``'s upload of ``kind``. ``declared`` is the exact
        length when the client announced it (refused at once if over the limit or quota).
        ``claimed_duration``: the client's duration of a voice note or video, kept only when the container
        does not say and the value is believable (issue 15; services/social_rules.py)."""
        self.check_declared(kind, declared)
        if claimed_duration is not None and kind not in ("voice", "video"):
            raise invalid("duration", "only for voice and video uploads")
        limit = self.limits[kind]
        token = secrets.token_hex(16)
        quota = _Quota(self.storage, token, owner, self.config.upload_quota_bytes)
        spool = self.spool / token
        extra: list[Path] = [spool, self.spool / f"{token}.clean"]
        try:
            if declared is not None:
                await quota.hold(declared)  # before any body byte is read
            size, head, digest = await self._spool(source, spool, limit, quota)
            if declared is not None and size != declared:
                raise HubbubError(
                    Code.BAD_REQUEST, f"the body has {size} bytes, not the {declared} announced"
                )
            if size == 0:
                raise invalid("body", "the upload is empty")
            mime = probe.kind_mime(kind, probe.sniff(head))
            record = await self._store(
                owner, kind, name, mime, spool, extra[1], token, digest, claimed_duration
            )
        finally:
            await asyncio.to_thread(_unlink_all, extra)
            await quota.release()
        return view_of(record)

    async def _spool(
        self, source: AsyncIterator[bytes], path: Path, limit: int, quota: _Quota
    ) -> tuple[int, bytes, str]:
        """Copy the body to ``path``, stopping as soon as it passes the limit or the quota; its size, first
        bytes and SHA-256 (hashed as it is written, in the writing thread: the file is not read again)."""
        f = await asyncio.to_thread(path.open, "xb")
        sha = hashlib.sha256()
        try:
            size = 0
            head = b""
            batch: list[bytes] = []
            batched = 0
            async for chunk in source:
                size += len(chunk)
                if size > limit:
                    raise HubbubError(Code.TOO_LARGE, f"this kind of upload may be at most {limit} bytes")
                if size > quota.held:
                    await quota.hold(min(max(size, quota.held + _RESERVE_STEP), limit), least=size)
                if len(head) < probe.HEAD_BYTES:
                    head += chunk[: probe.HEAD_BYTES - len(head)]
                batch.append(chunk)
                batched += len(chunk)
                if batched >= _WRITE_BATCH:
                    await asyncio.to_thread(_write, f, sha, b"".join(batch))
                    batch, batched = [], 0
            if batch:
                await asyncio.to_thread(_write, f, sha, b"".join(batch))
            return size, head, sha.hexdigest()
        finally:
            f.close()

    async def _store(
        self,
        owner: int,
        kind: str,
        name: str | None,
        mime: str,
        spool: Path,
        clean: Path,
        token: str,
        digest: str,
        claimed_duration: float | None = None,
    ) -> UploadRecord:
        meta: dict[str, Any] = {}
        original, key = spool, digest
        size = (await asyncio.to_thread(spool.stat)).st_size
        thumb: tuple[bytes, str] | None = None
        if kind == "image":
            image = await self._run(self._images, probe.process_image, spool, clean, self.image_limits)
            self.probe_work.add(image.work)
            original, mime, key, size = image.path, image.mime, image.sha256, image.size
            meta.update(width=image.width, height=image.height)
            meta["thumb"] = {"width": image.thumb_width, "height": image.thumb_height}
            thumb = (image.thumb, hashlib.sha256(image.thumb).hexdigest())
        elif kind in ("voice", "video"):
            work = probe.Work()
            try:
                seconds = await self._run(self._probes, probe.duration, spool, mime, work)
            finally:
                self.probe_work.add(work)
            if seconds is not None:
                meta["duration"] = seconds
            elif claimed_duration is not None:  # a browser's WebM says nothing: believe a plausible client
                meta["duration"] = check_claimed_duration(claimed_duration, size, self.config.voice_max_seconds)
        await self._put_blob(key, size, original)
        if thumb is not None:
            data, thumb_key = thumb
            await self.storage.touch_blob(thumb_key, len(data), now_ms())
            if not await self.blobs.exists(thumb_key):
                await self.blobs.put(thumb_key, _once(data), len(data))
        default = f"{kind}{probe.EXTENSIONS.get(mime, '')}"
        record = UploadRecord(
            id=token,
            owner=owner,
            kind=kind,
            blob=key,
            thumb=thumb[1] if thumb else None,
            size=size,
            mime=mime,
            name=probe.safe_name(name, default),
            meta=meta,
            created_at=now_ms(),
        )
        if not await self.storage.create_upload(record, token, self.config.upload_quota_bytes):
            raise _over_quota(self.config.upload_quota_bytes)
        return record

    async def _put_blob(self, key: str, size: int, path: Path) -> None:
        # Touch first: from here the collector spares the blob for a whole grace period (see MediaStorage).
        await self.storage.touch_blob(key, size, now_ms())
        if await self.blobs.size(key) != size:
            await self.blobs.put_file(key, path, size)

    # -- download --------------------------------------------------------------------------------------
    async def record(self, upload_id: str) -> UploadRecord:
        if not _ID.fullmatch(upload_id):
            raise not_found("upload")
        record = await self.storage.upload(upload_id)
        if record is None:
            raise not_found("upload")
        return record

    async def can_read(self, user_id: int, record: UploadRecord) -> bool:
        if record.owner == user_id:
            return True
        if await self.storage.upload_is_avatar(record.id):
            return True
        return await self.storage.upload_in_visible_message(record.id, user_id, MEDIA_TYPES)

    async def readable(self, user_id: int, upload_id: str) -> UploadRecord:
        record = await self.record(upload_id)
        if not await self.can_read(user_id, record):
            raise not_found("upload")
        return record

    async def open_download(self, user_id: int, upload_id: str, thumb: bool = False) -> Download:
        record = await self.readable(user_id, upload_id)
        if thumb:
            if record.thumb is None:
                raise not_found("thumbnail")
            size = await self.blobs.size(record.thumb)
            if size is None:
                raise not_found("thumbnail")
            return Download(record.thumb, size, "image/webp", f"{record.id}-thumb.webp", True)
        return Download(record.blob, record.size, record.mime, record.name, record.kind == "image")

    def stream(self, download: Download, start: int, end: int) -> AsyncIterator[bytes]:
        return self.blobs.get(download.key, start, end)

    # -- avatars ---------------------------------------------------------------------------------------
    async def check_avatar(self, editor: int, value: Any) -> str | None:
        """The upload id to store as a user's or group's avatar, or None to clear it (``null`` or ``""``).

        An avatar must be an image upload ``editor`` may read; anything else (a URL, ``javascript:``, an
        unknown id, someone else's upload not visible to the editor, a file) is refused. Only the uploader's
        own avatars make an upload public (``MediaStorage.upload_is_avatar``): naming another's upload as an
        avatar shows it only to those who could read it anyway.
        """
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise invalid("avatar", "the id of an image upload (POST /api/v1/uploads?kind=image), or null")
        record = await self._referable(editor, value, "avatar")
        if record.kind != "image":
            raise invalid("avatar", f"is a {record.kind} upload, not an image")
        return record.id

    # -- messages --------------------------------------------------------------------------------------
    async def attach(self, sender: int, msg_type: str, body: dict[str, Any], in_group: bool) -> None:
        """Validate a message of an upload type and fill in the upload's metadata (through ContentRules).

        The body a client sends is ``{"upload": id, "caption"?: str, "poster"?: image upload id (video)}``;
        the stored body is the :class:`UploadView` plus those. The sender must be able to read the upload
        (their own, or one they can see in a conversation); a ``file`` message may carry any kind.
        """
        allowed = {"upload", "caption"} | ({"poster"} if msg_type == "video" else set())
        if not body.keys() <= allowed:
            raise invalid("body", f"a {msg_type} message body has only {sorted(allowed)}")
        record = await self._referable(sender, body.get("upload"), "body.upload")
        if msg_type != "file" and record.kind != msg_type:
            raise invalid("body.upload", f"is a {record.kind} upload, not a {msg_type}")
        caption = body.get("caption")
        if caption is not None and (not isinstance(caption, str) or len(caption) > _CAPTION_MAX):
            raise invalid("body.caption", f"a string of at most {_CAPTION_MAX} characters")
        filled: dict[str, Any] = msgspec.to_builtins(view_of(record))
        if caption:
            filled["caption"] = caption
        if "poster" in body:
            poster = await self._referable(sender, body["poster"], "body.poster")
            if poster.kind != "image":
                raise invalid("body.poster", "must be an image upload")
            filled["poster"] = msgspec.to_builtins(view_of(poster))
            await self.storage.add_upload_ref(poster.id, sender, now_ms())
        await self.storage.add_upload_ref(record.id, sender, now_ms())
        body.clear()
        body.update(filled)

    async def _referable(self, sender: int, upload_id: Any, field: str) -> UploadRecord:
        if not isinstance(upload_id, str):
            raise invalid(field, "an upload id is required")
        try:
            return await self.readable(sender, upload_id)
        except HubbubError as exc:
            raise HubbubError(
                Code.NOT_FOUND, f"{field}: no such upload of yours or in your conversations"
            ) from exc

    # -- garbage collection ----------------------------------------------------------------------------
    async def _gc_round(self) -> None:
        """One round of the collector (``Periodic`` logs a failure and retries at the next interval)."""
        report = await self.gc_once()
        if report.uploads or report.blobs:
            log.info("blob gc: %s", report)

    async def gc_once(self, now: int | None = None, batch: int = 500) -> GcReport:
        cutoff = (now if now is not None else now_ms()) - int(self.config.blob_gc_grace_s * 1000)
        report = GcReport()
        while True:
            confirmed, dropped = await self.storage.settle_upload_refs(cutoff, MEDIA_TYPES, batch)
            report.confirmed_refs += confirmed
            report.dropped_refs += dropped
            if confirmed + dropped < batch:
                break
        while n := await self.storage.delete_unused_uploads(cutoff, batch):
            report.uploads += n
            if n < batch:
                break
        while keys := await self.storage.unreferenced_blobs(cutoff, batch):
            for key in keys:
                if await self.storage.delete_blob_row(key, cutoff):
                    await self.blobs.delete(key)
                    report.blobs += 1
            if len(keys) < batch:
                break
        return report


class _Quota:
    """The reservation of one upload in progress against its owner's quota (``MediaStorage.reserve_quota``).

    It grows ahead of the body by ``_RESERVE_STEP`` (one statement per step, not per chunk) and, when the
    step does not fit, by exactly what has arrived, so an upload that fits is never refused for the step.
    """

    def __init__(self, storage: Storage, token: str, owner: int, quota: int) -> None:
        self.storage = storage
        self.token = token
        self.owner = owner
        self.quota = quota
        #: Bytes reserved so far.
        self.held = 0

    async def hold(self, size: int, least: int | None = None) -> None:
        """Reserve ``size`` bytes in all or, if that does not fit, ``least``; QUOTA_EXCEEDED if neither."""
        for amount in (size,) if least is None or least >= size else (size, least):
            now = now_ms()
            expires = now + _RESERVATION_TTL_S * 1000
            if await self.storage.reserve_quota(self.token, self.owner, amount, self.quota, now, expires):
                self.held = amount
                return
        raise _over_quota(self.quota)

    async def release(self) -> None:
        """Drop what is left of the reservation (nothing once the upload is stored). Best effort: if the
        database is unreachable the reservation expires by itself."""
        with contextlib.suppress(HubbubError):
            await self.storage.release_quota(self.token)


def _over_quota(quota: int) -> HubbubError:
    return HubbubError(
        Code.QUOTA_EXCEEDED,
        f"this upload would pass your quota of {quota} bytes (counting your uploads in progress)",
    )


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _write(f: Any, sha: Any, data: bytes) -> None:
    sha.update(data)
    f.write(data)


def _unlink_all(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


__all__ = ["KINDS", "MEDIA_TYPES", "BlobNotFound", "Download", "MediaService", "UploadView", "Usage"]
