"""Accounts and sessions: register, log in, refresh, log out, change password, verify tokens.

A login creates a *session* (``sid``). Access tokens are short-lived JWTs carrying the sid; refresh tokens
are random, stored hashed, single-use, and rotate on every refresh. Presenting a spent refresh token revokes
the whole session: either the client is confused or someone replayed a stolen token.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import secrets

import jwt
import msgspec
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.core.models import Tokens, User
from hubbub.engines.broker.base import Broker
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.storage.base import Storage
from hubbub.protocol.close_codes import Close
from hubbub.services.limits import enforce

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{3,32}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


class Principal(msgspec.Struct, frozen=True):
    user_id: int
    sid: str


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_password_shape(password: str, field: str = "password") -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise invalid(field, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")


class AuthService:
    def __init__(self, config: Config, storage: Storage, broker: Broker, limiter: RateLimiter) -> None:
        self.config = config
        self.storage = storage
        self.broker = broker
        self.limiter = limiter
        self._secret = config.secret()
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost, memory_cost=config.argon2_memory_kib, parallelism=1
        )
        # Verifying against a real hash when the user does not exist keeps login timing uniform.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(8))

    # -- passwords (argon2 is deliberately slow: off the event loop) ----------------------------------
    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self._hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # -- tokens -----------------------------------------------------------------------------------
    def _access_token(self, user_id: int, sid: str) -> str:
        now = now_ms() // 1000
        claims = {"sub": str(user_id), "sid": sid, "iat": now, "exp": now + self.config.access_token_ttl_s}
        return jwt.encode(claims, self._secret, algorithm="HS256")

    async def _new_session(self, user: User) -> Tokens:
        sid = secrets.token_hex(16)
        refresh = "r1." + secrets.token_urlsafe(32)
        now = now_ms()
        await self.storage.create_session(
            sid, user.id, _hash_token(refresh), now + self.config.refresh_token_ttl_s * 1000, now
        )
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
    async def register(self, username: str, password: str, nickname: str | None) -> Tokens:
        if not USERNAME_RE.match(username):
            raise invalid("username", "3 to 32 letters, digits, '_', '.' or '-'")
        check_password_shape(password)
        nick = (nickname or username).strip()
        if not 1 <= len(nick) <= 64:
            raise invalid("nickname", "1 to 64 characters")
        if await self.storage.account_by_username(username) is not None:
            raise HubbubError(Code.USERNAME_TAKEN, f"username {username!r} is taken")
        user = await self.storage.create_user(username, nick, await self._hash(password), now_ms())
        return await self._new_session(user)

    async def login(self, username: str, password: str) -> Tokens:
        await enforce(
            self.limiter,
            f"login:{username.lower()}",
            self.config.login_per_minute / 60.0,
            self.config.login_burst,
        )
        account = await self.storage.account_by_username(username)
        ok = await self._verify(account.password_hash if account else self._dummy_hash, password)
        if account is None or not ok:
            raise HubbubError(Code.UNAUTHORIZED, "wrong username or password")
        if account.banned:
            raise HubbubError(Code.FORBIDDEN, "this account is banned")
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

    async def change_password(self, principal: Principal, old: str, new: str) -> None:
        """Set a new password; this session stays, every other one is revoked and its sockets closed."""
        check_password_shape(new, "new_password")
        account = await self.storage.account(principal.user_id)
        if account is None or not await self._verify(account.password_hash, old):
            raise HubbubError(Code.UNAUTHORIZED, "wrong password")
        await self.storage.set_password_hash(principal.user_id, await self._hash(new))
        revoked = await self.storage.revoke_sessions(principal.user_id, keep_sid=principal.sid)
        for sid in revoked:
            await self.broker.disconnect(principal.user_id, Close.REVOKED, "password changed", sid=sid)

    async def _end_session(self, user_id: int, sid: str) -> None:
        await self.storage.revoke_session(sid)
        await self.broker.disconnect(user_id, Close.REVOKED, "session ended", sid=sid)
