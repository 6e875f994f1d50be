"""Server administration: users, bans, groups, notices, the word list, nodes and config (docs/operations.md).

One service behind both doors: the admin HTTP routes (``/api/v1/admin/*``, for users with ``is_admin``) and
the ``hubbub admin`` commands, which build the same service against the configured database and Redis without
a running server. An action by the CLI is made in the name of the server's own account (``~hubbub``), the
one that also sends notices.

Notices: a notice is a message of type ``notice`` (``body: {"text"}``) from the server account, stored in
the private conversation between that account and each recipient, then pushed as a ``msg`` frame to those
online — through the message service's storing path (``MessageService.post``), as any message. So it is
durable (an offline user finds it at their next sync, as any message, and it counts as
unread) and needs no new frame or conversation kind. Nobody can reply: the server account is nobody's
friend, and nobody can log in as it.

Audit: every action that changes something appends an entry to the audit log (who, what, target, reason,
when, from which address: ``Actor``), after the change is stored; the CLI's actions are recorded as actor 0
from the address ``cli``. The log is append-only (engines/storage/base_access.py) and readable in the
console and as JSON lines (``GET /api/v1/admin/audit/export``).
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import group_conv, parse_group, private_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.ids import MessageIds
from hubbub.core.models import Group, GroupMember
from hubbub.engines.cluster.base import Cluster, NodeLoad
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import GroupChange, NewMessage, Storage, UserRecord
from hubbub.engines.storage.base_access import AuditEntry, AuditQuery, Report
from hubbub.protocol.close_codes import Close
from hubbub.services.canaries import Canaries
from hubbub.services.closing import AccountClosing
from hubbub.services.groups import GroupService
from hubbub.services.messages import MessageService
from hubbub.services.names import SERVER_NICKNAME, check_new_user
from hubbub.services.passwords import Passwords, check_new_password
from hubbub.services.reports import check_report_action
from hubbub.services.words import WordFilter, normalize

if TYPE_CHECKING:
    from hubbub.services.messages import MessageService

NOTICE_TYPE = "notice"
SERVER_USERNAME = "~hubbub"
#: Recipients per storing transaction when a notice goes to everyone.
NOTICE_BATCH = 500
MAX_WORDS_PER_CALL = 1000
#: Longest timed ban; longer is "for ever" (``seconds`` 0).
MAX_BAN_S = 10 * 365 * 24 * 3600
MAX_REASON = 1024


class Actor(msgspec.Struct, frozen=True):
    """Who does an admin action, and from where: what the audit log records."""

    user_id: int
    address: str = ""


#: ``hubbub admin`` on the server: recorded as actor 0 from the address ``cli`` (no account acts).
CLI_ACTOR = Actor(0, "cli")


#: Config fields never shown in full; URLs have their password masked.
SECRET_FIELDS = frozenset(
    {"jwt_secret", "s3_secret_key", "s3_access_key", "metrics_token", "call_turn_secret"}
)
URL_FIELDS = frozenset({"database", "redis", "s3_endpoint"})
MASK = "********"


def mask_url(url: str) -> str:
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def masked_config(config: Config) -> dict[str, Any]:
    """Every setting with its effective value, secrets masked: safe to print, log or return to an admin."""
    values: dict[str, Any] = msgspec.structs.asdict(config)
    for name in SECRET_FIELDS:
        if values.get(name):
            values[name] = MASK
    for name in URL_FIELDS:
        values[name] = mask_url(str(values.get(name, "")))
    values["node_id"] = config.effective_node_id
    return values


class AdminService:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        routing: Routing,
        cluster: Cluster,
        groups: GroupService,
        words: WordFilter,
        ids: MessageIds,
        passwords: Passwords,
        messages: MessageService,
        closing: AccountClosing,
        canaries: Canaries,
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.cluster = cluster
        self.canaries = canaries
        self.groups = groups
        self.messages = messages
        self.words = words
        self.ids = ids
        self.passwords = passwords
        #: Deleting an account is closing it (services/closing.py), the same call as a user's own.
        self.closing = closing
        self._server_user: int | None = None

    async def require_admin(self, user_id: int) -> None:
        record = await self.storage.user_record(user_id)
        if record is None or not record.is_admin or record.banned:
            raise HubbubError(Code.FORBIDDEN, "this needs a server administrator")

    async def server_user(self) -> int:
        """The server's own account: sender of notices, actor of what the CLI does."""
        if self._server_user is None:
            self._server_user = await self.storage.system_user(SERVER_USERNAME, SERVER_NICKNAME, now_ms())
        return self._server_user

    # -- users ------------------------------------------------------------------------------------
    async def users(self, query: str = "", after: int = 0, limit: int = 50) -> list[UserRecord]:
        if len(query) > 32:
            raise invalid("q", "at most 32 characters")
        return await self.storage.user_records(query.strip(), after, max(1, min(limit, 200)))

    async def user(self, user_id: int) -> UserRecord:
        record = await self.storage.user_record(user_id)
        if record is None:
            raise not_found("user")
        return record

    async def find_user(self, name_or_id: str) -> UserRecord:
        """A user by id or by username (for the CLI, where names are easier to type)."""
        if name_or_id.isascii() and name_or_id.isdigit() and len(name_or_id) <= 12:  # not "²" or "١"
            return await self.user(int(name_or_id))
        account = await self.storage.account_by_username(name_or_id)
        if account is None:
            raise not_found("user")
        return await self.user(account.user.id)

    async def create_user(
        self,
        username: str,
        password: str,
        nickname: str | None = None,
        *,
        admin: bool = False,
        canary: bool = False,
        by: Actor | None = None,
    ) -> UserRecord:
        """The same rules as registration (services/names.py, services/passwords.py), whatever the
        registration mode: this is how accounts are made on a ``closed`` server."""
        nick = check_new_user(username, nickname)
        check_new_password(password)
        password_hash = await self.passwords.hash(password)
        user = await self.storage.create_user(username, nick, password_hash, now_ms())
        record = await self.storage.set_user_flags(user.id, is_admin=admin, canary=canary)
        assert record is not None
        if canary:
            await self.canaries.refresh()
        await self.audit(by, "user.create", f"user:{user.id}", detail={"username": username, "admin": admin})
        return record

    async def set_canary(self, user_id: int, canary: bool) -> UserRecord:
        """Mark a delivery canary's account (hubbub/proof/canary.py): hidden from user search, left out of
        product metrics (services/canaries.py), its old messages purged by the retention job."""
        record = await self.storage.set_user_flags(user_id, canary=canary)
        if record is None:
            raise not_found("user")
        await self.canaries.refresh()
        return record

    async def purge_canary(self, older_than_s: int) -> int:
        """Delete canary accounts' messages older than ``older_than_s``; how many (the canary's retention)."""
        return await self.storage.purge_canary_messages(now_ms() - older_than_s * 1000)

    async def set_admin(self, user_id: int, admin: bool, *, by: Actor | None = None) -> UserRecord:
        before = await self.user(user_id)
        if before.deleted:
            raise HubbubError(Code.CONFLICT, "this account was deleted")
        record = await self.storage.set_user_flags(user_id, is_admin=admin)
        if record is None:
            raise not_found("user")
        if before.is_admin != admin:
            await self.audit(by, "user.admin_grant" if admin else "user.admin_revoke", f"user:{user_id}")
        return record

    async def ban_for(
        self, user_id: int, seconds: int = 0, reason: str = "", *, by: Actor | None = None
    ) -> UserRecord:
        """Ban with a reason, for ``seconds`` (0: until lifted). As ``ban``: sessions revoked in the same
        transaction, connections closed on every node. A timed ban ends by itself: the next login after
        its end lifts it (services/auth.py)."""
        if not 0 <= seconds <= MAX_BAN_S:
            raise invalid("seconds", f"0 (until lifted) to {MAX_BAN_S}")
        reason = _reason(reason)
        if len(reason) > 256:
            raise invalid("reason", "at most 256 characters")
        await self.user(user_id)
        until = now_ms() + seconds * 1000 if seconds else 0
        if not await self.storage.ban_until(user_id, until, reason):
            raise not_found("user")
        await self.routing.disconnect(user_id, Close.REVOKED, "banned")
        await self.audit(by, "user.ban", f"user:{user_id}", reason, {"seconds": seconds, "until": until})
        return await self.user(user_id)

    async def force_logout(self, user_id: int, *, by: Actor | None = None, reason: str = "") -> int:
        """End every session of the user (they may log in again); returns how many there were."""
        await self.user(user_id)
        revoked = await self.storage.revoke_sessions(user_id, None)
        await self.routing.disconnect(user_id, Close.REVOKED, "logged out by an administrator")
        await self.audit(by, "user.logout", f"user:{user_id}", reason, {"sessions": len(revoked)})
        return len(revoked)

    async def reset_password(
        self, user_id: int, password: str | None = None, *, by: Actor | None = None, reason: str = ""
    ) -> str:
        """Set a new password (a generated one if none is given, returned once) and end every session."""
        record = await self.user(user_id)
        if record.deleted or record.user.system:
            raise HubbubError(Code.CONFLICT, "this account has no password to reset")
        new = password if password is not None else secrets.token_urlsafe(12)
        check_new_password(new)
        await self.storage.set_password(user_id, await self.passwords.hash(new), keep_sid=None)
        await self.routing.disconnect(user_id, Close.REVOKED, "password reset")
        await self.audit(by, "user.password_reset", f"user:{user_id}", reason)
        return new

    async def delete_user(self, user_id: int, *, by: Actor | None = None, reason: str = "") -> UserRecord:
        """Delete an account: close it as its owner would (services/closing.py: anonymised as "Deleted user",
        banned, sessions revoked and connections closed, friendships removed, pending friend and join requests
        declined, invites revoked, groups left, uploads no message carried deleted; its messages stay under
        the anonymous name), and write it in the audit log. The one way an account is deleted, from the
        console, the API and the CLI alike."""
        record = await self.user(user_id)
        if record.user.system:
            raise HubbubError(Code.CONFLICT, "a server account cannot be deleted")
        await self.closing.close(user_id)
        await self.audit(by, "user.delete", f"user:{user_id}", reason, {"username": record.user.username})
        return await self.user(user_id)

    async def ban(self, user_id: int) -> UserRecord:
        """Ban: no more logins or refreshes, every session revoked, every connection closed (4403) on every
        node — through the nodes' queues (routing), so within a round trip, not at the next token expiry.

        The flag and the revocations are one transaction, and a session is only ever created in a
        transaction that finds the user not banned, so no login racing the ban keeps a session; a socket
        that authenticated just before the ban is closed by the gateway's re-check after it registers
        (docs/security.md, "Bans"). Until lifted, with no reason: ``ban_for`` is the general form."""
        return await self.ban_for(user_id)

    async def unban(self, user_id: int, *, by: Actor | None = None, reason: str = "") -> UserRecord:
        before = await self.user(user_id)
        if before.deleted:
            raise HubbubError(Code.CONFLICT, "this account was deleted")
        record = await self.storage.set_user_flags(user_id, banned=False)
        if record is None:
            raise not_found("user")
        if before.banned:
            await self.audit(by, "user.unban", f"user:{user_id}", _reason(reason))
        return record

    # -- groups -----------------------------------------------------------------------------------
    async def _group(self, group_id: int) -> Group:
        group = await self.storage.group(group_id)
        if group is None:
            raise not_found("group")
        if group.dismissed:
            raise HubbubError(Code.GROUP_DISMISSED, "this group was already dismissed")
        return group

    async def _change(
        self,
        group_id: int,
        by: Actor | None,
        fields: dict[str, Any],
        event: str,
        roles: dict[int, str] | None = None,
        users: list[int] | None = None,
    ) -> Group:
        """A group change made by the server: stored with its system message (``body.by_admin: true``) and
        announced to the members like any group change.

        The pre-checks in ``dismiss_group`` and ``freeze_group`` are repeated inside the writing transaction
        (``_still_open``), as for members' changes (services/groups.py ``_apply``): two racing dismissals
        would otherwise both pass and write two notices. A freeze that lost a race to an identical one is
        answered like an unchanged freeze (the group as it is), not with a second notice.
        """
        actor_id = by.user_id if by is not None else await self.server_user()
        extra: dict[str, Any] = {"users": users} if users else {}
        notice = NewMessage(
            id=self.ids.next(),
            conv=group_conv(group_id),
            sender=actor_id,
            cmid=f"~a:{uuid.uuid4().hex}",
            type="system",
            body={"event": event, "actor": actor_id, "by_admin": True, **extra},
            ts=now_ms(),
        )
        change = GroupChange(fields=fields, roles=roles or {})
        try:
            update = await self.storage.change_group(
                group_id, change, notice, lambda group: _still_open(group, fields)
            )
        except _Unchanged:
            return await self._group(group_id)
        await self.groups.announce(update)  # the one path group notices take to members
        return update.group

    async def dismiss_group(self, group_id: int, by: Actor | None = None, reason: str = "") -> Group:
        await self._group(group_id)
        group = await self._change(group_id, by, {"dismissed": True}, "dismissed")
        await self.audit(by, "group.dismiss", f"group:{group_id}", reason)
        return group

    async def freeze_group(
        self, group_id: int, frozen: bool, by: Actor | None = None, reason: str = ""
    ) -> Group:
        """Frozen: read-only. History stays readable; every send is refused with ``group_frozen``."""
        group = await self._group(group_id)
        if group.frozen == frozen:
            return group
        group = await self._change(group_id, by, {"frozen": frozen}, "frozen" if frozen else "unfrozen")
        await self.audit(by, "group.freeze" if frozen else "group.unfreeze", f"group:{group_id}", reason)
        return group

    async def transfer_group(
        self, group_id: int, user_id: int, by: Actor | None = None, reason: str = ""
    ) -> Group:
        """Give the group to one of its members (the old owner becomes an admin), e.g. when the owner's
        account was deleted. The same change and notice as an owner's transfer."""
        group = await self._group(group_id)
        member = await self.storage.group_member(group_id, user_id)
        if member is None:
            raise not_found("member")
        if member.role == "owner":
            return group
        roles = {group.owner: "admin", user_id: "owner"}
        if await self.storage.group_member(group_id, group.owner) is None:
            roles = {user_id: "owner"}
        group = await self._change(group_id, by, {"owner_id": user_id}, "owner_changed", roles, [user_id])
        await self.audit(by, "group.transfer", f"group:{group_id}", reason, {"owner": user_id})
        return group

    async def find_groups(self, query: str = "", after: int = 0, limit: int = 50) -> list[Group]:
        if len(query) > 64:
            raise invalid("q", "at most 64 characters")
        return await self.storage.find_groups(
            query.strip(), after, max(1, min(limit, 200)), public_only=False
        )

    async def group_view(self, group_id: int) -> Group:
        group = await self.storage.group(group_id)
        if group is None:
            raise not_found("group")
        return group

    async def group_members(self, group_id: int, after: int = 0, limit: int = 100) -> list[GroupMember]:
        await self.group_view(group_id)
        return await self.storage.group_members(group_id, after, max(1, min(limit, 200)))

    # -- reports ----------------------------------------------------------------------------------
    async def reports(self, status: str = "open", before: int = 0, limit: int = 50) -> list[Report]:
        if status not in ("", "open", "actioned", "dismissed"):
            raise invalid("status", "open, actioned, dismissed or empty for all")
        return await self.storage.reports(status, None, before, max(1, min(limit, 200)))

    async def resolve_report(
        self, report_id: int, action: str, note: str = "", ban_seconds: int = 0, *, by: Actor | None = None
    ) -> Report:
        """Act on a report: ``recall`` the message, ``ban`` its sender or the user, ``freeze`` the group
        (or the message's group), ``dismiss_group``, or ``dismiss`` the report. The action is taken first
        (each is idempotent), then the report closed and its reporter sent a notice of the outcome."""
        report = await self.storage.report(report_id)
        if report is None:
            raise not_found("report")
        if report.status != "open":
            raise HubbubError(Code.CONFLICT, f"this report was already {report.status}")
        check_report_action(report, action)
        note = _reason(note)
        target = report.target
        if action == "recall":
            if self.messages is None:
                raise HubbubError(Code.UNAVAILABLE, "recalls are made from a running server")
            conv, _, seq = target.rpartition(":")
            await self.messages.recall(await self.server_user(), conv, int(seq), moderator=True)
            await self.audit(by, "message.recall", target, note, {"report": report_id})
        elif action == "ban":
            user_id = int(report.snapshot["message"]["sender"]) if report.kind == "message" else int(target)
            await self.ban_for(user_id, ban_seconds, note or f"report #{report_id}", by=by)
        elif action == "freeze":
            group_id = parse_group(target.rpartition(":")[0]) if report.kind == "message" else int(target)
            if group_id is None:
                raise invalid("action", "this message is not in a group")
            await self.freeze_group(group_id, True, by, note or f"report #{report_id}")
        elif action == "dismiss_group":
            await self.dismiss_group(int(target), by, note or f"report #{report_id}")
        status = "dismissed" if action == "dismiss" else "actioned"
        outcome = "" if action == "dismiss" else action
        actor_id = by.user_id if by is not None else await self.server_user()
        await self.storage.resolve_report(report_id, status, outcome, actor_id, note, now_ms())
        await self.audit(by, "report.resolve", f"report:{report_id}", note, {"action": action})
        text = (
            f"Your report #{report_id} was reviewed: no action was needed."
            if action == "dismiss"
            else f"Your report #{report_id} was reviewed and acted on ({action.replace('_', ' ')})."
        )
        if note:
            text += f" Note: {note}"
        await self.notice(text[: self.config.max_text_chars], report.reporter, quiet=True)
        found = await self.storage.report(report_id)
        assert found is not None
        return found

    # -- audit ------------------------------------------------------------------------------------
    async def audit(
        self,
        by: Actor | None,
        action: str,
        target: str = "",
        reason: str = "",
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one entry to the audit log (after the change it records was stored)."""
        actor = by if by is not None else CLI_ACTOR
        await self.storage.append_audit(
            now_ms(), actor.user_id, action, target, reason, actor.address, detail or {}
        )

    async def audit_log(
        self, query: AuditQuery, before: int = 0, after: int | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        """Newest first (below id ``before``), or oldest first above id ``after`` when given (export)."""
        return await self.storage.audit(query, before, after, max(1, min(limit, 1000)))

    # -- notices ----------------------------------------------------------------------------------
    async def notice(
        self,
        text: str,
        user_id: int | None = None,
        on_progress: Callable[[int], None] | None = None,
        *,
        by: Actor | None = None,
        quiet: bool = False,
    ) -> int:
        """Send a notice to one user or to every user who is not banned; returns how many got it.

        Idempotent per call in batches: each recipient's copy has its own cmid, so a batch retried after a
        failure does not store a second copy (and pushes the one stored, as a resent message is).
        """
        text = text.strip()
        if not 1 <= len(text) <= self.config.max_text_chars:
            raise invalid("text", f"1 to {self.config.max_text_chars} characters")
        server = await self.server_user()
        notice_id = uuid.uuid4().hex[:16]
        sent = 0
        if user_id is not None:
            await self.user(user_id)
            if user_id == server:
                raise invalid("user", "the server account")
            sent = await self._notify(server, notice_id, text, [user_id])
        else:
            after = 0
            while page := await self.storage.active_user_ids(after, NOTICE_BATCH):
                after = page[-1]
                sent += await self._notify(server, notice_id, text, page)
                if on_progress is not None:
                    on_progress(sent)
        if not quiet:  # a report's outcome notice is part of resolving it, audited as that
            target = f"user:{user_id}" if user_id is not None else "everyone"
            await self.audit(by, "notice.send", target, detail={"text": text[:200], "sent": sent})
        return sent

    async def _notify(self, server: int, notice_id: str, text: str, users: list[int]) -> int:
        now = now_ms()
        recipients = [uid for uid in users if uid != server]
        batch = [
            NewMessage(
                id=self.ids.next(),
                conv=private_conv(server, uid),
                sender=server,
                cmid=f"~n:{notice_id}:{uid}",
                type=NOTICE_TYPE,
                body={"text": text},
                ts=now,
                members=tuple(sorted((server, uid))),
            )
            for uid in recipients
        ]
        await self.messages.post(batch)
        return len(batch)

    # -- words ------------------------------------------------------------------------------------
    async def word_list(self) -> list[str]:
        _, words = await self.storage.words()
        return words

    async def change_words(
        self, add: Sequence[str] = (), remove: Sequence[str] = (), *, by: Actor | None = None
    ) -> list[str]:
        if len(add) + len(remove) > MAX_WORDS_PER_CALL:
            raise invalid("words", f"at most {MAX_WORDS_PER_CALL} per call")
        added, removed = [normalize(w) for w in add], [normalize(w) for w in remove]
        if await self.storage.change_words(added, removed, now_ms()):
            await self.audit(by, "words.change", detail={"add": added[:50], "remove": removed[:50]})
        await self.words.load()  # this node applies it at once; the others within word_refresh_s
        return list(self.words.words)

    # -- cluster ----------------------------------------------------------------------------------
    async def nodes(self) -> list[NodeLoad]:
        return await self.cluster.nodes()

    def config_view(self) -> dict[str, Any]:
        return masked_config(self.config)


_UNSET = object()


class _Unchanged(HubbubError):
    """Inside the transaction: the group already has the fields the admin asked for."""


def _still_open(group: Group, fields: dict[str, Any]) -> HubbubError | None:
    """The admin change's check inside the transaction: not on a dismissed group, not a no-op."""
    if group.dismissed:
        return HubbubError(Code.GROUP_DISMISSED, "this group was already dismissed")
    # (Fields named for columns the Group model calls otherwise, like owner_id, count as a change.)
    if all(getattr(group, name, _UNSET) == value for name, value in fields.items()):
        return _Unchanged(Code.CONFLICT, "no change")
    return None


def _reason(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_REASON:
        raise invalid("reason", f"at most {MAX_REASON} characters")
    return text
