"""Bot accounts and their tokens (docs/integrations.md, "Bots").

A bot is a user marked ``bot``: it has a profile, can be befriended (it accepts every friend request) and
added to groups, and sends like anyone. It has no password; programs act as it with **bot tokens**: opaque
secrets (``hbb_...``) stored hashed, each with scopes — ``send`` (send messages), ``read`` (read the
conversations the bot is in, and hold a WebSocket) and ``profile`` (read and change its profile). A token is
shown once, revoked by its bot's owner or an admin (sockets opened with it are closed at once), and limited
to ``bot_requests_per_minute``. Routes a token may call are listed in platform/bot_scopes.py; everything else
(admin routes included) is refused with ``forbidden``.
"""

from __future__ import annotations

import hashlib
import secrets

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import User
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_integrations import SCOPES, Bot, BotToken
from hubbub.protocol.close_codes import Close
from hubbub.services.limits import enforce
from hubbub.services.names import check_new_user

#: Every bot token starts with this: ``authenticate`` tells it from a JWT at a glance.
TOKEN_PREFIX = "hbb_"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bot_sid(token_id: int) -> str:
    """The session id a bot token's principal carries: what its sockets are registered and revoked by."""
    return f"bot:{token_id}"


class BotService:
    def __init__(self, config: Config, storage: Storage, routing: Routing, limiter: RateLimiter) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.limiter = limiter

    async def create(self, owner: int, username: str, nickname: str | None) -> Bot:
        """A bot owned by ``owner``; at most ``bots_per_user`` each, admins excepted."""
        nick = check_new_user(username, nickname)
        if (
            not await self._is_admin(owner)
            and len(await self.storage.bots(owner)) >= self.config.bots_per_user
        ):
            raise HubbubError(Code.FORBIDDEN, f"you may own at most {self.config.bots_per_user} bots")
        now = now_ms()
        user = await self.storage.create_bot(username, nick, owner, now)
        return Bot(user=user, owner_id=owner, created_at=now)

    async def mine(self, actor: int) -> list[Bot]:
        return await self.storage.bots(actor)

    async def managed(self, actor: int, bot_id: int) -> Bot:
        """The bot, if ``actor`` owns it or is an admin; ``not_found`` otherwise (whether it exists is not
        told to others)."""
        bot = await self.storage.bot(bot_id)
        if bot is None or (bot.owner_id != actor and not await self._is_admin(actor)):
            raise not_found("bot")
        return bot

    async def issue_token(
        self, actor: int, bot_id: int, scopes: list[str], name: str
    ) -> tuple[BotToken, str]:
        """A new token of the bot and its secret (shown this once)."""
        await self.managed(actor, bot_id)
        wanted = sorted(set(scopes), key=SCOPES.index) if set(scopes) <= set(SCOPES) else None
        if not wanted:
            raise invalid("scopes", f"one or more of {', '.join(SCOPES)}")
        if len(name) > 64:
            raise invalid("name", "at most 64 characters")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = await self.storage.add_bot_token(bot_id, token_hash(secret), wanted, name, now_ms())
        return token, secret

    async def tokens(self, actor: int, bot_id: int) -> list[BotToken]:
        await self.managed(actor, bot_id)
        return await self.storage.bot_tokens(bot_id)

    async def revoke_token(self, actor: int, bot_id: int, token_id: int) -> None:
        await self.managed(actor, bot_id)
        if not await self.storage.revoke_bot_token(bot_id, token_id):
            raise not_found("token")
        await self.routing.disconnect(bot_id, Close.REVOKED, "bot token revoked", sid=bot_sid(token_id))

    async def user_of(self, bot_id: int) -> User:
        bot = await self.storage.bot(bot_id)
        if bot is None:
            raise not_found("bot")
        return bot.user

    async def _is_admin(self, user_id: int) -> bool:
        account = await self.storage.account(user_id)
        return account is not None and account.is_admin and not account.banned


async def bot_credentials(
    storage: Storage, limiter: RateLimiter, config: Config, token: str
) -> tuple[int, str, tuple[str, ...]]:
    """(bot id, sid, scopes) of a bot token, counted against its rate limit; ``unauthorized`` if unknown,
    ``token_revoked`` if revoked, ``forbidden`` if the bot is banned."""
    found = await storage.bot_credential(token_hash(token))
    if found is None:
        raise HubbubError(Code.UNAUTHORIZED, "invalid bot token")
    if found.revoked:
        raise HubbubError(Code.TOKEN_REVOKED, "this bot token was revoked")
    if found.banned:
        raise HubbubError(Code.FORBIDDEN, "this account is banned")
    rate = config.bot_requests_per_minute / 60.0
    await enforce(limiter, f"bot-token:{found.token_id}", rate, config.bot_request_burst)
    return found.bot_id, bot_sid(found.token_id), found.scopes
