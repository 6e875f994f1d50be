"""The storage interface for access control and moderation (issue 20): server settings, registration
invites, group join links and join requests, the public group directory, reports and the admin audit log.

Contract (tests/contract/test_access_storage.py runs it against SQLite and PostgreSQL):
- ``create_user_with_invite`` takes one use of the invite and creates the account in **one** transaction:
  a refused invite creates nothing, a taken username uses nothing up, and two sign-ups racing for the last
  use of an invite cannot both get it.
- ``take_link_use`` takes one use of a join link only while the link is live (not revoked, not expired,
  uses left), atomically; ``give_back_link_use`` returns it when the join it was taken for was refused.
- ``decide_join_request`` and ``resolve_report`` change only what is still pending/open, so two admins
  answering at once cannot both act.
- The audit log is append-only: there is no method that changes or removes an entry.
- Any failure to reach the database raises ``HubbubError(Code.UNAVAILABLE)``.
"""

from __future__ import annotations

import abc
from typing import Any

import msgspec

from hubbub.core.models import Group, User


class Invite(msgspec.Struct, kw_only=True):
    """A registration invite code."""

    code: str
    created_by: int
    max_uses: int
    uses: int = 0
    #: ms since the epoch; 0: never expires.
    expires_at: int = 0
    revoked: bool = False
    note: str = ""
    created_at: int


class GroupLink(msgspec.Struct, kw_only=True):
    """A join link of a group (also shown as a QR code by the clients)."""

    code: str
    group_id: int
    created_by: int
    #: 0: no limit.
    max_uses: int = 0
    uses: int = 0
    #: ms since the epoch; 0: never expires.
    expires_at: int = 0
    revoked: bool = False
    created_at: int


class JoinRequest(msgspec.Struct, kw_only=True):
    id: int
    group_id: int
    user: User
    #: The link it came through; "" from the public directory.
    link: str = ""
    #: pending, approved, declined.
    status: str
    created_at: int
    decided_by: int | None = None
    decided_at: int | None = None


class Report(msgspec.Struct, kw_only=True):
    id: int
    reporter: int
    #: message, user or group.
    kind: str
    #: ``<conv>:<seq>`` for a message, the id for a user or a group.
    target: str
    reason: str
    #: The reported thing as it was when reported.
    snapshot: dict[str, Any]
    #: open, actioned, dismissed.
    status: str
    #: What the admin did: recall, ban, freeze, dismiss_group, or "" (report dismissed / still open).
    outcome: str = ""
    handled_by: int | None = None
    handled_at: int | None = None
    #: The admin's note, shown to the reporter.
    note: str = ""
    created_at: int


class AuditEntry(msgspec.Struct, kw_only=True):
    id: int
    ts: int
    actor: int
    action: str
    target: str = ""
    reason: str = ""
    address: str = ""
    detail: dict[str, Any] = {}


class AuditQuery(msgspec.Struct, kw_only=True):
    """Filters of ``audit``: each one given narrows the result."""

    actor: int | None = None
    action: str = ""
    target: str = ""
    since: int = 0
    until: int = 0


class AccessStorage(abc.ABC):
    # -- settings ---------------------------------------------------------------------------------
    @abc.abstractmethod
    async def settings_values(self, keys: tuple[str, ...]) -> dict[str, str]:
        """The stored values of these keys of the ``settings`` table (absent keys are left out)."""

    @abc.abstractmethod
    async def put_settings(self, values: dict[str, str]) -> None:
        """Store these values in one transaction."""

    # -- registration -----------------------------------------------------------------------------
    @abc.abstractmethod
    async def has_real_users(self) -> bool:
        """Whether any account other than the server's own (``~`` names) exists."""

    @abc.abstractmethod
    async def create_invite(self, invite: Invite) -> Invite: ...

    @abc.abstractmethod
    async def invite(self, code: str) -> Invite | None: ...

    @abc.abstractmethod
    async def invites(self, created_by: int | None, after: str, limit: int) -> list[Invite]:
        """Invites (of one creator, or all), newest first; ``after`` is a code of the previous page."""

    @abc.abstractmethod
    async def revoke_invite(self, code: str) -> Invite | None: ...

    @abc.abstractmethod
    async def create_user_with_invite(
        self, username: str, nickname: str, password_hash: str, now: int, code: str
    ) -> User:
        """Take one use of invite ``code`` and create the account, in one transaction. Refusals:
        ``invite_invalid`` (with ``reason``: unknown, revoked, expired, used_up), ``username_taken``."""

    # -- join links and requests ------------------------------------------------------------------
    @abc.abstractmethod
    async def create_link(self, link: GroupLink) -> GroupLink: ...

    @abc.abstractmethod
    async def link(self, code: str) -> GroupLink | None: ...

    @abc.abstractmethod
    async def links(self, group_id: int) -> list[GroupLink]:
        """The group's links that are not revoked, newest first."""

    @abc.abstractmethod
    async def revoke_link(self, group_id: int, code: str) -> bool: ...

    @abc.abstractmethod
    async def take_link_use(self, code: str, now: int) -> bool:
        """Count one use if the link is live (not revoked, not expired at ``now``, uses left)."""

    @abc.abstractmethod
    async def give_back_link_use(self, code: str) -> None: ...

    @abc.abstractmethod
    async def create_join_request(self, group_id: int, user_id: int, link: str, now: int) -> JoinRequest:
        """A pending request; the pending one already there if the user asked before."""

    @abc.abstractmethod
    async def join_request(self, request_id: int) -> JoinRequest | None: ...

    @abc.abstractmethod
    async def pending_join_request(self, group_id: int, user_id: int) -> JoinRequest | None: ...

    @abc.abstractmethod
    async def join_requests(self, group_id: int, status: str, limit: int) -> list[JoinRequest]: ...

    @abc.abstractmethod
    async def decide_join_request(self, request_id: int, status: str, by: int, now: int) -> bool:
        """Set the status of a request that is still pending; False if it no longer is."""

    @abc.abstractmethod
    async def find_groups(self, query: str, after: int, limit: int, public_only: bool) -> list[Group]:
        """Groups by id above ``after``, ascending; name prefix or contained word ``query``; for the public
        directory only public groups that are not dismissed or frozen."""

    # -- moderation -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def ban_until(self, user_id: int, until: int, reason: str) -> bool:
        """Ban (until ``until`` ms, 0: for ever) and revoke every session, in one transaction."""

    @abc.abstractmethod
    async def lift_expired_ban(self, user_id: int, now: int) -> bool:
        """Lift the user's ban if it had an end that has passed; True if the user may now log in."""

    @abc.abstractmethod
    async def create_report(self, report: Report) -> Report: ...

    @abc.abstractmethod
    async def report(self, report_id: int) -> Report | None: ...

    @abc.abstractmethod
    async def reports(self, status: str, reporter: int | None, before: int, limit: int) -> list[Report]:
        """Newest first, ids below ``before`` (0: from the newest); ``status`` "" for any."""

    @abc.abstractmethod
    async def resolve_report(
        self, report_id: int, status: str, outcome: str, by: int, note: str, now: int
    ) -> bool:
        """Close a report that is still open; False if it no longer is."""

    @abc.abstractmethod
    async def append_audit(
        self, ts: int, actor: int, action: str, target: str, reason: str, address: str, detail: dict[str, Any]
    ) -> int: ...

    @abc.abstractmethod
    async def audit(self, query: AuditQuery, before: int, after: int | None, limit: int) -> list[AuditEntry]:
        """Entries matching ``query``: newest first below id ``before`` (0: from the newest) when ``after``
        is None, else oldest first above id ``after`` (the JSON-lines export walks forward)."""

    @abc.abstractmethod
    async def admin_counts(self) -> dict[str, int]:
        """Totals for the console's dashboard: users, banned users, groups, uploads and their bytes, open
        reports. Counted on request (an admin's page load), never on a hot path."""
