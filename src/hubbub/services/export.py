"""Exports: a user's own data, or a whole conversation for an admin (docs/operations.md, "Exports").

An export is a job: asked for (one at a time per subject: asking again while it runs is ``conflict``), built
in the background on the node that took the request, stored in the blob store (so any node of a cluster can
serve it), downloadable through a signed link until it expires, then deleted by the sweep.

The archive is a ZIP of JSON files, one JSON-lines file of messages per conversation, and the media files.
It is written page by page (messages 500 at a time, files in the blob store's chunks) to a spool file and
then streamed into the blob store: memory stays bounded whatever the size of the export.

Archive layout (a user export; a conversation export has ``conversation.json`` and one ``messages.jsonl``):
``README.txt``, ``profile.json``, ``friends.json``, ``social.json``, ``groups.json``, ``conversations.json``,
``messages/<conv>.jsonl`` (every message the user may read: from when they joined, above the purged floor),
``uploads.json`` and ``media/<upload id>-<name>`` (the user's own uploads).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import re
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group, parse_private
from hubbub.core.errors import Code, HubbubError, not_found
from hubbub.core.ids import MessageIds
from hubbub.engines.blobs.base import BlobNotFound, BlobStore
from hubbub.engines.storage.base import Storage, UploadRecord
from hubbub.engines.storage.lifecycle import ExportRecord

log = logging.getLogger(__name__)

_PAGE = 500
_SWEEP_S = 300.0
_encode = msgspec.json.encode
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
README = """Hubbub export
=============
Made by the Hubbub server at the time in export.json. JSON files are UTF-8; messages/*.jsonl hold one message
per line, oldest first, exactly as the API returns them (docs/protocol.md). media/ holds the files named in
uploads.json (a user export: your own uploads) or in the messages (a conversation export).
"""


class ExportView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    subject: str
    #: pending, building, ready, failed or expired.
    status: str
    size: int
    created_at: int
    finished_at: int
    #: When the archive (and its link) stop being available; 0 until ready.
    expires_at: int
    #: Why a failed export failed (not an error object: the export itself was answered).
    failure: str = ""
    #: A signed link (no token needed) while the export is ready; it stops working at ``expires_at``.
    download_url: str | None = None


class ExportList(msgspec.Struct):
    exports: list[ExportView]


class ExportService:
    def __init__(self, config: Config, storage: Storage, blobs: BlobStore, ids: MessageIds) -> None:
        self.config = config
        self.storage = storage
        self.blobs = blobs
        self.ids = ids
        self._key = hashlib.sha256(b"hubbub-export-link:" + config.secret().encode()).digest()
        self._jobs: dict[str, asyncio.Task[None]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.spool = Path(config.data_dir) / "export-spool"

    # -- asking -------------------------------------------------------------------------------------
    async def request_user_export(self, me: int) -> ExportView:
        return await self._request(me, "user", str(me))

    async def request_conversation_export(self, admin: int, conv: str) -> ExportView:
        """A conversation, for compliance (the caller is a server admin)."""
        if parse_private(conv) is None and parse_group(conv) is None:
            raise not_found("conversation")
        if not await self.storage.member_floors(conv):
            raise not_found("conversation")
        return await self._request(admin, "conversation", conv)

    async def _request(self, me: int, kind: str, subject: str) -> ExportView:
        record = ExportRecord(
            id=str(self.ids.next()),
            user_id=me,
            kind=kind,
            subject=subject,
            status="pending",
            created_at=now_ms(),
        )
        await self.storage.create_export(record)  # conflict if the same one is still running
        self._jobs[record.id] = asyncio.get_running_loop().create_task(self._run(record))
        self._jobs[record.id].add_done_callback(lambda _t: self._jobs.pop(record.id, None))
        return self.view(record)

    async def mine(self, me: int) -> list[ExportView]:
        return [self.view(r) for r in await self.storage.exports_of(me, 20)]

    async def one(self, me: int, export_id: str) -> ExportView:
        record = await self.storage.export_job(export_id)
        if record is None or record.user_id != me:
            raise not_found("export")
        return self.view(record)

    def view(self, r: ExportRecord) -> ExportView:
        url = None
        if r.status == "ready":
            url = (
                f"/api/v1/exports/{r.id}/download?expires={r.expires_at}&sig={self._sign(r.id, r.expires_at)}"
            )
        return ExportView(
            id=r.id,
            kind=r.kind,
            subject=r.subject,
            status=r.status,
            size=r.size,
            created_at=r.created_at,
            finished_at=r.finished_at,
            expires_at=r.expires_at,
            failure=r.error,
            download_url=url,
        )

    def _sign(self, export_id: str, expires_at: int) -> str:
        return hmac.new(self._key, f"{export_id}.{expires_at}".encode(), hashlib.sha256).hexdigest()

    # -- downloading ----------------------------------------------------------------------------------
    async def open_download(
        self, export_id: str, expires: str, sig: str
    ) -> tuple[ExportRecord, AsyncIterator[bytes]]:
        """The archive behind a signed link: ``not_found`` for a wrong link, ``expired`` after its time."""
        record = await self.storage.export_job(export_id)
        if record is None or not hmac.compare_digest(self._sign(export_id, _int(expires)), sig):
            raise not_found("export")
        if record.status == "expired" or (record.status == "ready" and record.expires_at <= now_ms()):
            raise HubbubError(Code.EXPIRED, "this export expired: ask for a new one")
        if record.status != "ready" or _int(expires) != record.expires_at:
            raise not_found("export")
        chunks = self.blobs.get(_blob_key(export_id))
        return record, chunks

    # -- building -------------------------------------------------------------------------------------
    async def _run(self, record: ExportRecord) -> None:
        tmp = self.spool / f"{record.id}.zip"
        try:
            await self.storage.update_export(record.id, "building")
            await asyncio.to_thread(self.spool.mkdir, parents=True, exist_ok=True)
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
                meta = {"kind": record.kind, "subject": record.subject, "created_at": now_ms()}
                zf.writestr("export.json", _encode(meta))
                zf.writestr("README.txt", README)
                if record.kind == "user":
                    await self._write_user(zf, int(record.subject))
                else:
                    await self._write_conversation(zf, record.subject)
            size = (await asyncio.to_thread(tmp.stat)).st_size
            await self.blobs.put_file(_blob_key(record.id), tmp, size)
            now = now_ms()
            await self.storage.update_export(
                record.id,
                "ready",
                size=size,
                finished_at=now,
                expires_at=now + self.config.export_ttl_s * 1000,
            )
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await self.storage.update_export(
                    record.id, "failed", error="the node stopped", finished_at=now_ms()
                )
            raise
        except Exception as exc:
            log.exception("export %s failed", record.id)
            with contextlib.suppress(Exception):
                await self.storage.update_export(
                    record.id, "failed", error=str(exc)[:500], finished_at=now_ms()
                )
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()

    async def _write_user(self, zf: zipfile.ZipFile, uid: int) -> None:
        record = await self.storage.user_record(uid)
        if record is None:
            raise not_found("user")
        zf.writestr("profile.json", _encode(record))
        friends = [{"user": u, "since": since} for u, since in await self.storage.friends(uid)]
        zf.writestr("friends.json", _encode(friends))
        social = {  # issue 15: whom I block, my remarks, my chat preferences and privacy
            "blocks": [{"user": u, "since": since} for u, since in await self.storage.blocks(uid)],
            "remarks": [{"user": user, "remark": text} for user, text in (await self.storage.remarks(uid)).items()],
            "chat_prefs": await self.storage.chat_prefs(uid),
            "last_seen_privacy": (await self.storage.social([uid]))[uid].privacy,
        }
        zf.writestr("social.json", _encode(social))
        zf.writestr("groups.json", _encode(await self.storage.groups_of(uid)))
        states = await self.storage.conversations_of(uid)
        zf.writestr("conversations.json", _encode(states))
        for state in states:
            floor = max(state.min_seq, state.purged_seq)
            await self._write_messages(
                zf, f"messages/{state.conv.replace(':', '_')}.jsonl", state.conv, floor
            )
        # Two passes over the uploads, a page at a time (a ZIP takes one member at a time): the list, then
        # the files. Nothing holds them all.
        with zf.open("uploads.json", "w", force_zip64=True) as out:
            out.write(b"[")
            first = True
            async for page in self._upload_pages(uid):
                out.write((b"" if first else b",") + b",".join(_encode(u) for u in page))
                first = False
            out.write(b"]")
        async for page in self._upload_pages(uid):
            for upload in page:
                await self._write_blob(zf, f"media/{upload.id}-{_safe(upload.name)}", upload.blob)

    async def _upload_pages(self, uid: int) -> AsyncIterator[list[UploadRecord]]:
        after = ""
        while page := await self.storage.uploads_of(uid, after, _PAGE):
            after = page[-1].id
            yield page
            if len(page) < _PAGE:
                return

    async def _write_conversation(self, zf: zipfile.ZipFile, conv: str) -> None:
        floor = await self.storage.purged_floor(conv)
        floors = await self.storage.member_floors(conv)
        members = await self.storage.users(list(floors))
        zf.writestr(
            "conversation.json",
            _encode(
                {
                    "conv": conv,
                    "floor": floor,
                    "retention_days": await self.storage.retention_of(conv),
                    "members": [
                        {"user": members.get(uid), "id": uid, "since_seq": f} for uid, f in floors.items()
                    ],
                }
            ),
        )
        named = await self._write_messages(zf, "messages.jsonl", conv, floor)
        for upload_id in sorted(named):
            upload = await self.storage.upload(upload_id)
            if upload is not None:
                await self._write_blob(zf, f"media/{upload.id}-{_safe(upload.name)}", upload.blob)

    async def _write_messages(self, zf: zipfile.ZipFile, name: str, conv: str, floor: int) -> set[str]:
        """Messages above ``floor``, a page at a time; the upload ids they name."""
        named: set[str] = set()
        with zf.open(name, "w", force_zip64=True) as out:
            after = floor
            while page := await self.storage.messages_after(conv, after, _PAGE):
                after = page[-1].seq
                out.write(b"".join(_encode(m) + b"\n" for m in page))
                for m in page:
                    upload = m.body.get("upload")
                    if isinstance(upload, str):
                        named.add(upload)
                if len(page) < _PAGE:
                    break
                await asyncio.sleep(0)  # let the node breathe between pages
        return named

    async def _write_blob(self, zf: zipfile.ZipFile, name: str, key: str) -> None:
        try:
            with zf.open(name, "w", force_zip64=True) as out:
                async for chunk in self.blobs.get(key):
                    await asyncio.to_thread(_write, out, chunk)
        except BlobNotFound:
            log.warning("export: blob %s is missing; %s left out", key, name)

    # -- the sweep ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._sweeper is not None and not self._sweeper.done()

    def start(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        tasks = [*self._jobs.values(), *([self._sweeper] if self._sweeper else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._sweeper = None

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("export sweep failed")
            await asyncio.sleep(_SWEEP_S)

    async def sweep(self, now: int | None = None) -> int:
        """Delete expired archives; fail exports whose node died while building them. How many changed."""
        now = now_ms() if now is None else now
        stale = await self.storage.stale_exports(now, now - int(self.config.export_stale_s * 1000), 100)
        changed = 0
        for r in stale:
            if r.id in self._jobs:
                continue  # still building here
            if r.status == "ready":
                await self.blobs.delete(_blob_key(r.id))
                await self.storage.update_export(r.id, "expired")
            else:
                await self.storage.update_export(r.id, "failed", error="interrupted", finished_at=now)
            changed += 1
        return changed


def _blob_key(export_id: str) -> str:
    return f"export{export_id}.zip"


def _safe(name: str) -> str:
    return _NAME_UNSAFE.sub("_", name)[:100] or "file"


def _int(raw: str) -> int:
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else -1


def _write(out: IO[bytes], chunk: bytes) -> None:
    out.write(chunk)
