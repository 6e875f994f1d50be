"""Retention: how long messages are kept, and the purge job that removes them (docs/operations.md, "Retention").

A conversation keeps its messages for its own policy's days if it has one, else for the server's
``retention_days``; 0 means for ever. The purge job, on every API node every ``retention_interval_s`` (runs on
several nodes at once are harmless: the floor only rises and deleting is idempotent):

1. for each conversation with a finite policy, finds the newest seq older than the cutoff (a binary search
   over seqs: a conversation's seqs are gap-free above its floor and their timestamps rise with them), raises
   the conversation's **purged floor** to it, then deletes the rows at or below it in bounded batches;
2. drops the upload references of the media messages it deleted, drops a hot group's cached copies
   (``HotGroups.purged``), and finally runs the media collector, which removes uploads no message references
   any more and then their blobs (after ``blob_gc_grace_s``).

Readers never see below the floor (``Storage.member_state`` clamps to it), so ``sync``, ``pull`` and
``history`` answer as if the conversation began just above it: no error, and no gap reported as a loss
(docs/protocol.md, "Retention and the purged floor").
"""

from __future__ import annotations

import logging

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group, parse_private
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.periodic import Periodic
from hubbub.engines.storage.base import Storage
from hubbub.services.hot import HotGroups
from hubbub.services.media import MediaService

log = logging.getLogger(__name__)

DAY_MS = 86_400_000
#: Longest policy, in days (a hundred years: "for ever" is 0).
MAX_DAYS = 36_500
#: Rows deleted per transaction: short enough that a send waits at most one batch behind the purge.
PURGE_BATCH = 2000
#: Conversations read per page by the job.
_PAGE = 500


class RetentionView(msgspec.Struct, kw_only=True):
    conv: str
    #: What applies: the conversation's own policy, else the server's default; 0 keeps messages for ever.
    days: int
    #: The conversation's own policy (null: the server default applies).
    own: int | None
    server_default: int
    #: Every message at or below this seq was removed by retention.
    floor: int
    #: Whether the caller may change ``own``.
    can_edit: bool = False


class PurgeReport(msgspec.Struct, kw_only=True):
    conversations: int = 0
    messages: int = 0
    refs: int = 0
    uploads: int = 0
    blobs: int = 0
    #: Messages of the delivery canary's accounts, past ``canary_retention_hours``.
    canary: int = 0


def check_days(days: int | None) -> int | None:
    """A policy: null (the server default), 0 (for ever) or 1 to MAX_DAYS days."""
    if days is not None and not 0 <= days <= MAX_DAYS:
        raise invalid("days", f"0 (keep for ever) to {MAX_DAYS}, or null for the server default; not {days}")
    return days


class RetentionService:
    def __init__(self, config: Config, storage: Storage, hot: HotGroups, media: MediaService) -> None:
        self.config = config
        self.storage = storage
        self.hot = hot
        self.media = media
        #: An error is logged and the purge retried at the next interval (core/periodic.py).
        self._purger = Periodic(
            "retention-purge", config.retention_interval_s if config.retention_interval_s > 0 else 1.0, self._purge_logged, jitter=0.1
        )

    # -- policies -----------------------------------------------------------------------------------
    async def view(self, me: int, conv: str) -> RetentionView:
        """The policy of a conversation, for its members."""
        await self._member(me, conv)
        return await self._view(conv, can_edit=await self._may_edit(me, conv))

    async def set_own(self, me: int, conv: str, days: int | None) -> RetentionView:
        """A group's owner sets its policy (when ``group_retention_by_owner``); private chats' are admins'."""
        await self._member(me, conv)
        if not await self._may_edit(me, conv):
            raise HubbubError(Code.FORBIDDEN, "only a group's owner (or a server admin) sets its retention")
        await self.storage.set_retention(conv, check_days(days), me, now_ms())
        return await self._view(conv, can_edit=True)

    async def set_by_admin(self, admin: int, conv: str, days: int | None) -> RetentionView:
        """Any conversation's policy, by a server administrator (authorized by the caller)."""
        if parse_private(conv) is None and parse_group(conv) is None:
            raise not_found("conversation")
        await self.storage.set_retention(conv, check_days(days), admin, now_ms())
        return await self._view(conv, can_edit=True)

    async def _view(self, conv: str, can_edit: bool) -> RetentionView:
        own = await self.storage.retention_of(conv)
        return RetentionView(
            conv=conv,
            days=self.config.retention_days if own is None else own,
            own=own,
            server_default=self.config.retention_days,
            floor=await self.storage.purged_floor(conv),
            can_edit=can_edit,
        )

    async def _member(self, me: int, conv: str) -> None:
        pair = parse_private(conv)
        if pair is None and parse_group(conv) is None:
            raise not_found("conversation")
        if pair is not None and me not in pair:
            raise HubbubError(Code.FORBIDDEN, "not your conversation")
        if pair is None and await self.storage.member_state(conv, me) is None:
            raise HubbubError(Code.FORBIDDEN, "you are not a member of this group")

    async def _may_edit(self, me: int, conv: str) -> bool:
        group_id = parse_group(conv)
        if group_id is None or not self.config.group_retention_by_owner:
            return False
        member = await self.storage.group_member(group_id, me)
        return member is not None and member.role == "owner"

    # -- the purge job --------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._purger.running

    def start(self) -> None:
        """Purge every ``retention_interval_s`` (0: never; ``hubbub admin purge`` runs one pass by hand)."""
        if self.config.retention_interval_s > 0:
            self._purger.start()

    async def close(self) -> None:
        await self._purger.stop()

    async def _purge_logged(self) -> None:
        report = await self.purge_once()
        if report.messages or report.canary:
            log.info("retention purge: %s", report)

    async def purge_once(self, now: int | None = None) -> PurgeReport:
        """One pass over every conversation; ``now`` for tests (the cutoffs are relative to it)."""
        now = now_ms() if now is None else now
        report = PurgeReport()
        after = ""
        while page := await self.storage.conv_floors(after, _PAGE):
            after = page[-1].conv
            own = await self.storage.retention_policies([c.conv for c in page if c.max_seq > c.purged_seq])
            for c in page:
                days = own.get(c.conv, self.config.retention_days)
                if days <= 0 or c.max_seq <= c.purged_seq:
                    continue
                floor = await self._expired_through(c.conv, c.purged_seq, c.max_seq, now - days * DAY_MS)
                if floor <= c.purged_seq:
                    continue
                await self.purge_conversation(c.conv, floor, report)
            if len(page) < _PAGE:
                break
        if (hours := self.config.canary_retention_hours) > 0:
            report.canary = await self.storage.purge_canary_messages(now - int(hours * 3_600_000))
        gc = await self.media.gc_once(now)
        report.uploads, report.blobs = gc.uploads, gc.blobs
        return report

    async def purge_conversation(self, conv: str, floor: int, report: PurgeReport) -> None:
        """Raise the floor to ``floor`` and delete what is at or below it; then the references and caches."""
        refs: set[tuple[str, int]] = set()
        while True:
            batch = await self.storage.purge_through(conv, floor, PURGE_BATCH)
            report.messages += batch.deleted
            refs.update(batch.refs)
            if batch.deleted < PURGE_BATCH:
                break
        report.conversations += 1
        if refs:
            report.refs += await self.storage.drop_stale_upload_refs(sorted(refs))
        if parse_group(conv) is not None:
            await self.hot.purged(conv, floor)

    async def _expired_through(self, conv: str, floor: int, top: int, cutoff: int) -> int:
        """The newest seq in (floor, top] whose message is older than ``cutoff`` (``floor`` if none).

        Seqs above the floor are all present and their timestamps rise with them (a batch takes its
        timestamp when queued, so two may be out of order by milliseconds: irrelevant against days)."""
        lo, hi = floor, top  # invariant: lo is expired (or the floor), everything above hi is not
        first = await self.storage.message(conv, floor + 1)
        if first is not None and first.ts >= cutoff:
            return floor
        while lo < hi:
            mid = (lo + hi + 1) // 2
            found = await self.storage.message(conv, mid)
            if found is None or found.ts < cutoff:  # None: purged meanwhile by another node
                lo = mid
            else:
                hi = mid - 1
        return lo
