"""The storage interface of Web Push (issue 17): devices, each user's push settings, and the outgoing queue.

The queue is a table with one row per (device, conversation): a burst of messages in one conversation
updates that row (the newest seq, a count) instead of adding rows, which is the coalescing, and the row
remembers the highest seq already pushed, which is the idempotency (a message is never pushed twice to a
device, a resend of it included). It survives restarts because it is the database.

Contract (tests/contract/test_push_storage.py runs it against SQLite and PostgreSQL):
- ``add_push_device`` is keyed by the push endpoint: the same browser subscribing again (another login, even
  another user's) moves the device to the new session and user, so nothing meant for the old owner reaches it.
- ``push_targets`` names only devices of live sessions: a logged-out or revoked session's devices get nothing
  (and ``purge_revoked_push_devices`` deletes them).
- ``queue_pushes`` never lowers a row: a seq at or below what is pending or was sent changes nothing.
- ``claim_pushes`` leases due rows to one node: while the lease lasts no other claim returns them, on any
  node (a PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's single writer). ``finish_push`` applies only to
  the lease it is given, so a node whose lease expired cannot overwrite its successor's work.
- Any failure to reach the database raises ``HubbubError(Code.UNAVAILABLE)``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Literal

import msgspec

#: What a push may reveal (docs/protocol.md, "Web Push"): the text, only who wrote, or nothing at all (a
#: wake-up after which the service worker fetches the details from this server).
Preview = Literal["full", "sender", "none"]
#: Which messages of hot groups push: mentions only (the default), or all of them.
HotPush = Literal["mentions", "all"]


class PushPrefs(msgspec.Struct, kw_only=True):
    preview: Preview = "full"
    #: @mentions and @all push even from a group the user set to do-not-disturb.
    mentions_through_mute: bool = True
    hot_groups: HotPush = "mentions"


class PushDevice(msgspec.Struct, kw_only=True):
    """A push subscription of one terminal (a browser profile, later a phone app)."""

    id: str
    user_id: int
    #: The login session it belongs to: it ends with it.
    sid: str
    #: ``webpush`` (RFC 8030 endpoint + RFC 8291 keys) or ``fcm`` (a registration token in ``endpoint``).
    kind: str
    endpoint: str
    p256dh: str = ""
    auth: str = ""
    label: str = ""
    created_at: int
    #: The last time the push service accepted a push for it (ms; 0: never yet).
    last_ok_at: int = 0


class PushTarget(msgspec.Struct, frozen=True):
    """A device that may be pushed to, with its owner's settings."""

    device_id: str
    user_id: int
    prefs: PushPrefs
    #: The owner set the group (``push_targets``' ``conv``) to do-not-disturb.
    dnd: bool = False


class NewPush(msgspec.Struct, frozen=True):
    """A message to push to one device (coalesced into its conversation's row)."""

    device_id: str
    user_id: int
    conv: str
    seq: int
    sender: int
    #: The title the notification shows (the sender's name, "name in group" for groups).
    title: str
    #: The message's text (or a stand-in like "[image]"); kept in the queue even when the user's preview
    #: setting hides it from the push service, for the wake-up fetch.
    text: str
    mention: bool = False


class PushJob(msgspec.Struct, kw_only=True):
    """A claimed row of the queue: what to send to one device about one conversation."""

    device: PushDevice
    conv: str
    #: ``msg`` (a notification) or ``clear`` (the conversation was read elsewhere: close its notification).
    kind: str
    seq: int
    count: int
    title: str
    text: str
    mention: bool
    attempts: int
    #: The lease this claim holds: ``finish_push`` must present it.
    lease: str
    #: The owner's preview setting as it is now (``PushPrefs.preview``).
    preview: str = "full"


class Finished(msgspec.Struct, frozen=True):
    """How one claimed job ended (``finish_pushes``)."""

    job: PushJob
    #: The push service took it.
    sent: bool
    #: Not sent: try again then (ms); None drops it.
    retry_at: int | None = None


class PushStorage(abc.ABC):
    # -- devices ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_push_device(self, device: PushDevice) -> PushDevice:
        """Store the device, or move the one with this endpoint to this user and session (its id kept)."""

    @abc.abstractmethod
    async def push_devices(self, user_id: int) -> list[PushDevice]:
        """The user's devices of live sessions, newest first."""

    @abc.abstractmethod
    async def push_device(self, device_id: str) -> PushDevice | None: ...

    @abc.abstractmethod
    async def push_device_by_endpoint(self, endpoint: str) -> PushDevice | None:
        """The live device subscribed at ``endpoint`` (a capability URL only its browser knows)."""

    @abc.abstractmethod
    async def remove_push_device(self, device_id: str, user_id: int | None = None) -> bool:
        """Delete the device (only the user's, with ``user_id``) and its queue rows; False if there was none."""

    @abc.abstractmethod
    async def purge_revoked_push_devices(self) -> int:
        """Delete the devices of ended sessions; how many."""

    # -- settings -----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def push_prefs(self, user_id: int) -> PushPrefs: ...

    @abc.abstractmethod
    async def set_push_prefs(self, user_id: int, prefs: PushPrefs) -> None: ...

    # -- the queue ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def push_targets(self, user_ids: Sequence[int] = (), conv: str | None = None) -> list[PushTarget]:
        """Devices of live sessions of ``user_ids``, or of every member of ``conv`` when given (with each
        member's do-not-disturb of that group)."""

    @abc.abstractmethod
    async def queue_pushes(self, pushes: Sequence[NewPush], now: int, window_ms: int) -> int:
        """Coalesce each push into its (device, conv) row: newer seq, count + 1, due now, or ``window_ms``
        after the last push of that row. A seq not above the row's pending and sent seqs changes nothing.
        Returns how many rows changed."""

    @abc.abstractmethod
    async def queue_clears(self, user_id: int, conv: str, read_seq: int, now: int) -> int:
        """The user read ``conv`` up to ``read_seq``: for each of their devices that was shown (or was about
        to be shown) a notification of it, now covered by the read, replace it with a ``clear``."""

    @abc.abstractmethod
    async def claim_pushes(self, node: str, now: int, lease_ms: int, limit: int) -> list[PushJob]:
        """Lease up to ``limit`` due rows to ``node`` (oldest due first)."""

    @abc.abstractmethod
    async def finish_pushes(self, done: Sequence[Finished], now: int, window_ms: int = 0) -> int:
        """End claims, in one transaction. ``sent``: the push service took it (the row's sent seq rises, a
        newer message that arrived meanwhile stays pending for ``window_ms``); else ``retry_at`` puts it back
        (attempts + 1), and neither drops it. A job whose lease is no longer its own changes nothing. Returns
        how many changed."""

    async def finish_push(
        self, job: PushJob, now: int, *, sent: bool, retry_at: int | None = None, window_ms: int = 0
    ) -> bool:
        """``finish_pushes`` of one job: False if its lease was no longer its own."""
        return bool(await self.finish_pushes([Finished(job, sent, retry_at)], now, window_ms))

    @abc.abstractmethod
    async def notifications_of(self, device_id: str) -> list[PushJob]:
        """What the device's notifications should show now (rows with an unread count), for a wake-up."""
