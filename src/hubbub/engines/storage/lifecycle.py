"""The data-lifecycle part of the storage interface: retention, purged floors, export jobs, closed accounts.

Contract (tests/lifecycle run it against SQLite and PostgreSQL):
- A conversation's **purged floor** only rises. ``purge_through`` raises it first and then deletes rows at or
  below it, in bounded batches; readers clamp to the floor (``member_state`` and ``member_floors`` return
  ``max(joined floor, purged floor)``), so a purge interrupted half way never shows a hole: every message
  above the floor is there, none at or below it is served.
- ``create_export`` refuses (``CONFLICT``) a second export of the same subject by the same user while one is
  pending or building: a unique key held only while it runs, so two nodes cannot both start it.
- ``close_account`` anonymises the user, revokes every session, and drops friendships and pending friend
  requests in one transaction.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from hubbub.engines.storage.base import UploadRecord


class ConvFloor(msgspec.Struct, frozen=True):
    """What the purge job needs of one conversation."""

    conv: str
    purged_seq: int
    max_seq: int


class PurgeBatch(msgspec.Struct, kw_only=True):
    deleted: int
    #: (upload id, sender) of the media messages deleted: their references may now be stale.
    refs: list[tuple[str, int]] = []


class ExportRecord(msgspec.Struct, kw_only=True):
    id: str
    user_id: int
    #: "user" (the user's own data) or "conversation" (an admin's compliance export).
    kind: str
    #: The user id (as text) or the conversation id.
    subject: str
    #: pending, building, ready, failed, expired.
    status: str
    size: int = 0
    error: str = ""
    created_at: int
    finished_at: int = 0
    expires_at: int = 0


class LifecycleStorage(abc.ABC):
    # -- retention ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def set_retention(self, conv: str, days: int | None, by: int, now: int) -> None:
        """Set the conversation's own policy (0: keep for ever); None drops it (the server default applies)."""

    @abc.abstractmethod
    async def retention_of(self, conv: str) -> int | None: ...

    @abc.abstractmethod
    async def retention_policies(self, convs: list[str]) -> dict[str, int]:
        """The own policies of those of ``convs`` that have one."""

    @abc.abstractmethod
    async def conv_floors(self, after: str, limit: int) -> list[ConvFloor]:
        """Conversations with an id above ``after``, ascending (keyset paging for the purge job)."""

    @abc.abstractmethod
    async def purged_floor(self, conv: str) -> int: ...

    @abc.abstractmethod
    async def purge_through(self, conv: str, seq: int, limit: int) -> PurgeBatch:
        """Raise the floor to ``seq`` (never past the conversation's max seq, never lower), then delete up to
        ``limit`` messages at or below the floor. Call until it deletes fewer than ``limit``."""

    @abc.abstractmethod
    async def drop_stale_upload_refs(self, refs: list[tuple[str, int]]) -> int:
        """Delete each (upload, sender) reference no remaining message of that sender names; how many."""

    # -- exports ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_export(self, record: ExportRecord) -> None:
        """Store a pending export; CONFLICT if the same one (user, kind, subject) is pending or building."""

    @abc.abstractmethod
    async def export_job(self, export_id: str) -> ExportRecord | None: ...

    @abc.abstractmethod
    async def exports_of(self, user_id: int, limit: int) -> list[ExportRecord]:
        """The user's exports, newest first."""

    @abc.abstractmethod
    async def update_export(self, export_id: str, status: str, **fields: int | str) -> None:
        """Move an export to ``status``; a finished one (ready, failed, expired) frees its subject."""

    @abc.abstractmethod
    async def stale_exports(self, now: int, building_before: int, limit: int) -> list[ExportRecord]:
        """Ready exports past their expiry, and pending or building ones started before ``building_before``
        (their node died)."""

    @abc.abstractmethod
    async def uploads_of(self, owner: int, after_id: str, limit: int) -> list[UploadRecord]:
        """The owner's uploads with an id above ``after_id``, ascending."""

    # -- accounts -----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def close_account(self, user_id: int, now: int) -> list[str] | None:
        """Anonymise the user, revoke their sessions, drop their friendships and pending requests; the
        revoked session ids, or None if there is no such (open) account."""

    @abc.abstractmethod
    async def delete_private_uploads(self, owner: int) -> list[str]:
        """Delete the owner's uploads that no message ever carried (only they could read them); the blob
        keys (originals and thumbnails) those uploads named."""
