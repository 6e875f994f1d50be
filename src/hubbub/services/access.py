"""Who may get an account: registration modes, invite codes, and the server settings an admin may change
live (docs/operations.md, "Registration and invites").

Settings live in the database (``settings`` table) and are read on use, so a change in the console applies on
every node at once; the config's ``registration`` is only the default until an admin chooses. The modes:

- ``open``: anyone may register.
- ``invite``: registration needs a live invite code (not revoked, not expired, uses left). Admins create
  invites; users too when ``user_invites`` is on, each with at most ``user_invite_max_uses`` uses.
- ``closed``: only admins create accounts (console, ``POST /api/v1/admin/users``, ``hubbub admin``).

Whatever the mode, a fresh server (no account yet) lets its first account register, so the first-user-is-
admin rule still gives a new server its admin; in ``invite`` mode a code given then is still checked.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import User
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_access import Invite

MODES = ("open", "invite", "closed")
#: Longest an invite may live, and the most uses one may have.
MAX_INVITE_TTL_S = 365 * 24 * 3600
MAX_INVITE_USES = 10_000
MAX_INVITES_LISTED = 200


class ServerSettings(msgspec.Struct, kw_only=True):
    """The settings an admin may change while the server runs; every node reads them from the database."""

    #: open, invite or closed.
    registration: str = "open"
    #: Users (not only admins) may create registration invites (in ``invite`` mode).
    user_invites: bool = False
    #: The most uses a user's invite may have (admins' invites are limited by MAX_INVITE_USES only).
    user_invite_max_uses: int = 5
    #: How many invites one user may create per day.
    user_invites_per_day: int = 10


_KEYS = tuple(f"access.{name}" for name in ServerSettings.__struct_fields__)


def _parse(raw: dict[str, str], default_mode: str) -> ServerSettings:
    values: dict[str, Any] = {"registration": default_mode}
    for key, value in raw.items():
        name = key.removeprefix("access.")
        values[name] = msgspec.json.decode(value)
    try:
        return msgspec.convert(values, ServerSettings)
    except msgspec.ValidationError:  # a value stored by an older version: fall back to defaults
        return ServerSettings(registration=default_mode)


def check_settings(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate a partial change of the settings; raises ``invalid_field`` naming the first bad one."""
    fields = ServerSettings.__struct_fields__
    for name in changes:
        if name not in fields:
            raise invalid(name, "not a setting that can be changed live")
    if "registration" in changes and changes["registration"] not in MODES:
        raise invalid("registration", "'open', 'invite' or 'closed'")
    if "user_invites" in changes and not isinstance(changes["user_invites"], bool):
        raise invalid("user_invites", "must be true or false")
    for name, high in (("user_invite_max_uses", MAX_INVITE_USES), ("user_invites_per_day", 1000)):
        if name in changes:
            value = changes[name]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
                raise invalid(name, f"an integer from 1 to {high}")
    return changes


class AccessService:
    def __init__(self, config: Config, storage: Storage) -> None:
        self.config = config
        self.storage = storage

    # -- settings ---------------------------------------------------------------------------------
    async def settings(self) -> ServerSettings:
        return _parse(await self.storage.settings_values(_KEYS), self.config.registration)

    async def change_settings(self, changes: dict[str, Any]) -> tuple[ServerSettings, dict[str, Any]]:
        """Apply a partial change (all of it or nothing); returns the new settings and what changed."""
        check_settings(changes)
        current = msgspec.structs.asdict(await self.settings())
        changed = {k: v for k, v in changes.items() if current[k] != v}
        if changed:
            await self.storage.put_settings(
                {f"access.{k}": msgspec.json.encode(v).decode() for k, v in changed.items()}
            )
        return await self.settings(), changed

    # -- registration -----------------------------------------------------------------------------
    async def create_account(
        self, username: str, nickname: str, password_hash: str, invite: str | None
    ) -> User:
        """The registration gate, then the account (with the invite's use, in one transaction)."""
        mode = (await self.settings()).registration
        fresh = self.config.first_user_admin and not await self.storage.has_real_users()
        if mode == "closed" and not fresh:
            raise HubbubError(
                Code.REGISTRATION_CLOSED, "registration is closed: an administrator creates accounts"
            )
        if invite:
            return await self.storage.create_user_with_invite(
                username, nickname, password_hash, now_ms(), invite
            )
        if mode == "open" or fresh:
            return await self.storage.create_user(username, nickname, password_hash, now_ms())
        raise HubbubError(Code.INVITE_REQUIRED, "registration on this server needs an invite code")

    async def public_info(self) -> dict[str, Any]:
        """What the sign-up page needs to know before anyone logs in."""
        s = await self.settings()
        fresh = self.config.first_user_admin and not await self.storage.has_real_users()
        return {"registration": "open" if fresh else s.registration, "user_invites": s.user_invites}

    # -- invites ----------------------------------------------------------------------------------
    async def create_invite(
        self, creator: int, *, max_uses: int, ttl_s: int, note: str = "", admin: bool
    ) -> Invite:
        if not 0 <= ttl_s <= MAX_INVITE_TTL_S:
            raise invalid("ttl_s", f"0 (never expires) to {MAX_INVITE_TTL_S}")
        if len(note) > 256:
            raise invalid("note", "at most 256 characters")
        s = await self.settings()
        high = MAX_INVITE_USES if admin else s.user_invite_max_uses
        if not 1 <= max_uses <= high:
            raise invalid("max_uses", f"1 to {high}")
        if not admin:
            if not s.user_invites:
                raise HubbubError(Code.FORBIDDEN, "only administrators can create invites on this server")
            day_ago = now_ms() - 24 * 3600 * 1000
            recent = [i for i in await self.storage.invites(creator, "", 1000) if i.created_at > day_ago]
            if len(recent) >= s.user_invites_per_day:
                raise HubbubError(Code.RATE_LIMITED, f"at most {s.user_invites_per_day} invites a day")
        now = now_ms()
        invite = Invite(
            code=secrets.token_urlsafe(12),
            created_by=creator,
            max_uses=max_uses,
            expires_at=now + ttl_s * 1000 if ttl_s else 0,
            note=note.strip(),
            created_at=now,
        )
        return await self.storage.create_invite(invite)

    async def invites(self, creator: int | None, after: str = "", limit: int = 50) -> list[Invite]:
        return await self.storage.invites(creator, after, max(1, min(limit, MAX_INVITES_LISTED)))

    async def revoke_invite(self, code: str, by: int | None) -> Invite:
        """Revoke an invite: admins any (``by`` None), users their own."""
        found = await self.storage.invite(code)
        if found is None or (by is not None and found.created_by != by):
            raise not_found("invite")
        revoked = await self.storage.revoke_invite(code)
        assert revoked is not None
        return revoked
