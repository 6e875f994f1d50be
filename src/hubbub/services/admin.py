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
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import group_conv, private_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.ids import MessageIds
from hubbub.core.models import Group
from hubbub.engines.broker.base import Broker, NodeLoad
from hubbub.engines.storage.base import GroupChange, NewMessage, Storage, UserRecord
from hubbub.protocol.close_codes import Close
from hubbub.services.groups import GroupService
from hubbub.services.messages import MessageService
from hubbub.services.names import SERVER_NICKNAME, check_new_user
from hubbub.services.passwords import Passwords, check_new_password
from hubbub.services.words import WordFilter, normalize

NOTICE_TYPE = "notice"
SERVER_USERNAME = "~hubbub"
#: Recipients per storing transaction when a notice goes to everyone.
NOTICE_BATCH = 500
MAX_WORDS_PER_CALL = 1000

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
        broker: Broker,
        groups: GroupService,
        words: WordFilter,
        ids: MessageIds,
        passwords: Passwords,
        messages: MessageService,
    ) -> None:
        self.config = config
        self.storage = storage
        self.broker = broker
        self.groups = groups
        self.messages = messages
        self.words = words
        self.ids = ids
        self.passwords = passwords
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
    ) -> UserRecord:
        """The same rules as registration (services/names.py, services/passwords.py)."""
        nick = check_new_user(username, nickname)
        check_new_password(password)
        password_hash = await self.passwords.hash(password)
        user = await self.storage.create_user(username, nick, password_hash, now_ms())
        record = await self.storage.set_user_flags(user.id, is_admin=admin, canary=canary)
        assert record is not None
        return record

    async def set_canary(self, user_id: int, canary: bool) -> UserRecord:
        """Mark a delivery canary's account (hubbub/proof/canary.py): hidden from user search, its messages
        purged by ``purge_canary``."""
        record = await self.storage.set_user_flags(user_id, canary=canary)
        if record is None:
            raise not_found("user")
        return record

    async def purge_canary(self, older_than_s: int) -> int:
        """Delete canary accounts' messages older than ``older_than_s``; how many (the canary's retention)."""
        return await self.storage.purge_canary_messages(now_ms() - older_than_s * 1000)

    async def set_admin(self, user_id: int, admin: bool) -> UserRecord:
        record = await self.storage.set_user_flags(user_id, is_admin=admin)
        if record is None:
            raise not_found("user")
        return record

    async def ban(self, user_id: int) -> UserRecord:
        """Ban: no more logins or refreshes, every session revoked, every connection closed (4403) on every
        node — through the broker's node queues, so within a round trip, not at the next token expiry.

        The flag and the revocations are one transaction, and a session is only ever created in a
        transaction that finds the user not banned, so no login racing the ban keeps a session; a socket
        that authenticated just before the ban is closed by the gateway's re-check after it registers
        (docs/security.md, "Bans")."""
        record = await self.storage.ban_user(user_id)
        if record is None:
            raise not_found("user")
        await self.broker.disconnect(user_id, Close.REVOKED, "banned")
        return record

    async def unban(self, user_id: int) -> UserRecord:
        record = await self.storage.set_user_flags(user_id, banned=False)
        if record is None:
            raise not_found("user")
        return record

    # -- groups -----------------------------------------------------------------------------------
    async def _group(self, group_id: int) -> Group:
        group = await self.storage.group(group_id)
        if group is None:
            raise not_found("group")
        if group.dismissed:
            raise HubbubError(Code.GROUP_DISMISSED, "this group was already dismissed")
        return group

    async def _change(self, group_id: int, actor: int | None, fields: dict[str, Any], event: str) -> Group:
        """A group change made by the server: stored with its system message (``body.by_admin: true``) and
        announced to the members like any group change.

        The pre-checks in ``dismiss_group`` and ``freeze_group`` are repeated inside the writing transaction
        (``_still_open``), as for members' changes (services/groups.py ``_apply``): two racing dismissals
        would otherwise both pass and write two notices. A freeze that lost a race to an identical one is
        answered like an unchanged freeze (the group as it is), not with a second notice.
        """
        actor_id = actor if actor is not None else await self.server_user()
        notice = NewMessage(
            id=self.ids.next(),
            conv=group_conv(group_id),
            sender=actor_id,
            cmid=f"~a:{uuid.uuid4().hex}",
            type="system",
            body={"event": event, "actor": actor_id, "by_admin": True},
            ts=now_ms(),
        )
        try:
            update = await self.storage.change_group(
                group_id, GroupChange(fields=fields), notice, lambda group: _still_open(group, fields)
            )
        except _Unchanged:
            return await self._group(group_id)
        await self.groups.announce(update)  # the one path group notices take to members
        return update.group

    async def dismiss_group(self, group_id: int, actor: int | None = None) -> Group:
        await self._group(group_id)
        return await self._change(group_id, actor, {"dismissed": True}, "dismissed")

    async def freeze_group(self, group_id: int, frozen: bool, actor: int | None = None) -> Group:
        """Frozen: read-only. History stays readable; every send is refused with ``group_frozen``."""
        group = await self._group(group_id)
        if group.frozen == frozen:
            return group
        return await self._change(group_id, actor, {"frozen": frozen}, "frozen" if frozen else "unfrozen")

    # -- notices ----------------------------------------------------------------------------------
    async def notice(
        self, text: str, user_id: int | None = None, on_progress: Callable[[int], None] | None = None
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
            return await self._notify(server, notice_id, text, [user_id])
        after = 0
        while page := await self.storage.active_user_ids(after, NOTICE_BATCH):
            after = page[-1]
            sent += await self._notify(server, notice_id, text, page)
            if on_progress is not None:
                on_progress(sent)
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

    async def change_words(self, add: Sequence[str] = (), remove: Sequence[str] = ()) -> list[str]:
        if len(add) + len(remove) > MAX_WORDS_PER_CALL:
            raise invalid("words", f"at most {MAX_WORDS_PER_CALL} per call")
        await self.storage.change_words([normalize(w) for w in add], [normalize(w) for w in remove], now_ms())
        await self.words.load()  # this node applies it at once; the others within word_refresh_s
        return list(self.words.words)

    # -- cluster ----------------------------------------------------------------------------------
    async def nodes(self) -> list[NodeLoad]:
        return await self.broker.nodes()

    def config_view(self) -> dict[str, Any]:
        return masked_config(self.config)


class _Unchanged(HubbubError):
    """Inside the transaction: the group already has the fields the admin asked for."""


def _still_open(group: Group, fields: dict[str, Any]) -> HubbubError | None:
    """The admin change's check inside the transaction: not on a dismissed group, not a no-op."""
    if group.dismissed:
        return HubbubError(Code.GROUP_DISMISSED, "this group was already dismissed")
    if all(getattr(group, name) == value for name, value in fields.items()):
        return _Unchanged(Code.CONFLICT, "no change")
    return None
