"""Accounts and sessions: register, log in, refresh, log out, change password, verify tokens.

A login creates a *session* (``sid``). Access tokens are short-lived JWTs carrying the sid; refresh tokens
are random, stored hashed, single-use, and rotate on every refresh. Presenting a spent refresh token revokes
the whole session: either the client is confused or someone replayed a stolen token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import jwt
import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Tokens, User
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.protocol.close_codes import Close
from hubbub.services.access import AccessService
from hubbub.services.limits import enforce
from hubbub.services.names import check_new_user
from hubbub.services.passwords import Passwords, check_new_password


class Principal(msgspec.Struct, frozen=True):
    user_id: int
    sid: str


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _banned() -> HubbubError:
    return HubbubError(Code.FORBIDDEN, "this account is banned")


class AuthService:
    def __init__(
        self, config: Config, storage: Storage, routing: Routing, limiter: RateLimiter, passwords: Passwords
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.limiter = limiter
        self.passwords = passwords
        #: Registration modes and invites (services/access.py); stateless, so built here.
        self.access = AccessService(config, storage)
        self._secret = config.secret()

    # -- tokens -----------------------------------------------------------------------------------
    def _access_token(self, user_id: int, sid: str) -> str:
        now = now_ms() // 1000
        claims = {"sub": str(user_id), "sid": sid, "iat": now, "exp": now + self.config.access_token_ttl_s}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    async def _new_session(self, user: User) -> Tokens:
        """A session for ``user``, refused if the user is banned by then: the storage checks the ban in
        the transaction that creates the session, so a ban landing while a login is being checked either
        makes the login fail or revokes the session it created (docs/security.md, "Bans")."""
        sid = secrets.token_hex(16)
        refresh = "r1." + secrets.token_urlsafe(32)
        now = now_ms()
        created = await self.storage.create_session(
            sid, user.id, _hash_token(refresh), now + self.config.refresh_token_ttl_s * 1000, now
        )
        if not created:
            raise _banned()
        return Tokens(
            user=user,
            access_token=self._access_token(user.id, sid),
            refresh_token=refresh,
            expires_in=self.config.access_token_ttl_s,
        )

    def decode_access(self, token: str) -> Principal:
        """Check signature and expiry only (no database): for hot paths that re-check the session later."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise HubbubError(Code.TOKEN_EXPIRED, "access token expired, refresh it") from exc
        except jwt.PyJWTError as exc:
            raise HubbubError(Code.UNAUTHORIZED, "invalid access token") from exc
        try:
            return Principal(user_id=int(claims["sub"]), sid=str(claims["sid"]))
        except (KeyError, ValueError) as exc:
            raise HubbubError(Code.UNAUTHORIZED, "invalid access token") from exc

    async def authenticate(self, token: str) -> Principal:
        principal = self.decode_access(token)
        if not await self.storage.session_active(principal.sid):
            raise HubbubError(Code.TOKEN_REVOKED, "this session has ended, log in again")
        return principal

    # -- flows ------------------------------------------------------------------------------------
    async def register(
        self, username: str, password: str, nickname: str | None, invite: str | None = None
    ) -> Tokens:
        """Sign up, if the server's registration mode lets this caller in (services/access.py): an invite's
        use and the account are one transaction, so a refused sign-up uses nothing up."""
        nick = check_new_user(username, nickname)
        check_new_password(password)
        if await self.storage.account_by_username(username) is not None:
            raise HubbubError(Code.USERNAME_TAKEN, f"username {username!r} is taken")
        password_hash = await self.passwords.hash(password)
        user = await self.access.create_account(username, nick, password_hash, invite)
        return await self._new_session(user)

    async def login(self, username: str, password: str, address: str) -> Tokens:
        """Limited per (username, client address): a stranger's wrong guesses use up the stranger's own
        allowance, never the owner's (the per-address limit against spraying many names is at the edge,
        platform/limits.py)."""
        c = self.config
        key = f"login:{username.lower()}:{address}"
        await enforce(self.limiter, key, c.login_per_minute / 60.0, c.login_burst)
        account = await self.storage.account_by_username(username)
        ok = await self.passwords.verify(account.password_hash if account else None, password)
        if account is None or not ok:
            raise HubbubError(Code.UNAUTHORIZED, "wrong username or password")
        if account.banned and not await self.storage.lift_expired_ban(account.user.id, now_ms()):
            raise _banned()
        return await self._new_session(account.user)

    async def refresh(self, refresh_token: str) -> Tokens:
        old_hash = _hash_token(refresh_token)
        found = await self.storage.refresh_token(old_hash)
        if found is None:
            raise HubbubError(Code.UNAUTHORIZED, "unknown refresh token")
        if found.session_revoked:
            raise HubbubError(Code.TOKEN_REVOKED, "this session has ended, log in again")
        if found.expires_at < now_ms():
            raise HubbubError(Code.TOKEN_EXPIRED, "refresh token expired, log in again")
        new_token = self._successor(refresh_token)
        expires = now_ms() + self.config.refresh_token_ttl_s * 1000
        if found.spent or not await self.storage.rotate_refresh_token(
            old_hash, _hash_token(new_token), found.sid, expires
        ):
            if not await self._within_grace(new_token, found.sid):
                await self._end_session(found.user_id, found.sid)
                raise HubbubError(Code.TOKEN_REVOKED, "refresh token reused; the session was revoked")
        account = await self.storage.account(found.user_id)
        if account is None or account.banned:
            raise HubbubError(Code.TOKEN_REVOKED, "this session has ended, log in again")
        await self.storage.touch_session(found.sid, now_ms())  # the sessions list's "last active"
        return Tokens(
            user=account.user,
            access_token=self._access_token(found.user_id, found.sid),
            refresh_token=new_token,
            expires_in=self.config.access_token_ttl_s,
        )

    def _successor(self, refresh_token: str) -> str:
        """The token that replaces ``refresh_token``: derived from it with a keyed hash, so a retry of the
        same refresh can be answered with the same successor without storing it in clear. Unpredictable
        without both the spent token and the server secret."""
        mac = hmac.new(self._secret.encode(), b"refresh-successor:" + refresh_token.encode(), "sha256")
        return "r1." + base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()

    async def _within_grace(self, successor: str, sid: str) -> bool:
        """A spent token presented again is a lost response, not a replay, while (1) it was spent less than
        ``refresh_reuse_grace_s`` ago and (2) its successor is still unused: then the caller gets that same
        successor again (docs/security.md, "Refresh tokens"). Anything else is treated as theft."""
        grace_ms = self.config.refresh_reuse_grace_s * 1000
        if grace_ms <= 0:
            return False
        nxt = await self.storage.refresh_token(_hash_token(successor))
        if nxt is None or nxt.spent or nxt.session_revoked or nxt.sid != sid:
            return False
        spent_at = nxt.expires_at - self.config.refresh_token_ttl_s * 1000
        return 0 <= now_ms() - spent_at <= grace_ms

    async def logout(self, refresh_token: str) -> None:
        found = await self.storage.refresh_token(_hash_token(refresh_token))
        if found is None:
            raise HubbubError(Code.UNAUTHORIZED, "unknown refresh token")
        await self._end_session(found.user_id, found.sid)

    async def change_password(
        self, principal: Principal, old: str, new: str, *, logout_others: bool = True
    ) -> None:
        """Set a new password; this session stays, every other one is revoked and its sockets closed.

        Limited per session and per user (twice the session's allowance) before any hashing, so guessing
        the old password is slow and a burst of requests cannot queue up argon2 work for everyone else.
        The new hash and the revocations are one transaction."""
        c = self.config
        rate = c.password_change_per_hour / 3600.0
        await enforce(self.limiter, f"password-sid:{principal.sid}", rate, c.password_change_burst)
        await enforce(self.limiter, f"password:{principal.user_id}", 2 * rate, 2 * c.password_change_burst)
        check_new_password(new, "new_password")
        account = await self.storage.account(principal.user_id)
        if account is None or not await self.passwords.verify(account.password_hash, old):
            raise HubbubError(Code.UNAUTHORIZED, "wrong password")
        new_hash = await self.passwords.hash(new)
        if not logout_others:  # issue 15: the user chose to keep their other sessions
            await self.storage.update_password_hash(principal.user_id, new_hash)
            return
        revoked = await self.storage.set_password(principal.user_id, new_hash, keep_sid=principal.sid)
        for sid in revoked:
            await self.routing.disconnect(principal.user_id, Close.REVOKED, "password changed", sid=sid)

    def close(self) -> None:
        self.passwords.close()

    async def _end_session(self, user_id: int, sid: str) -> None:
        await self.storage.revoke_session(sid)
        await self.routing.disconnect(user_id, Close.REVOKED, "session ended", sid=sid)
