"""The storage interface for the social layer (issue 15): blocks, contact remarks, chat preferences, last
seen and its privacy, and the sessions list.

Contract (tests/contract/test_social_storage.py runs it against SQLite and PostgreSQL):
- ``block`` is idempotent: blocking again keeps the first ``since``. It declines the pending friend requests
  between the two users in the same transaction, so a request cannot slip past a block.
- ``blocking(a, b)`` is true when either blocked the other (one query, both directions).
- ``set_chat_prefs`` applies only the fields given, atomically, and refuses a pin past ``max_pinned``
  (``conflict``) without changing anything; a row back to all defaults is deleted (the list holds only chats
  with a preference).
- Any failure to reach the database raises ``HubbubError(Code.UNAVAILABLE)``.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Literal

import msgspec

from hubbub.core.models import User

LastSeenPrivacy = Literal["everyone", "friends", "nobody"]


class ChatPrefs(msgspec.Struct, kw_only=True):
    conv: str
    #: When the chat was pinned (ms); 0: not pinned.
    pinned: int = 0
    muted: bool = False
    archived: bool = False
    marked_unread: bool = False
    updated_at: int = 0


class ChatPrefsChange(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The fields a PATCH gives; None: leave as it is."""

    pinned: bool | None = None
    muted: bool | None = None
    archived: bool | None = None
    marked_unread: bool | None = None


class Social(msgspec.Struct, frozen=True):
    privacy: LastSeenPrivacy = "friends"
    #: ms; 0: never seen (or never went offline since issue 15).
    last_seen: int = 0


class SessionRow(msgspec.Struct, frozen=True):
    sid: str
    created_at: int
    last_active: int


class SocialStorage(abc.ABC):
    # -- blocks -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def block(self, user_id: int, target: int, now: int) -> int:
        """Block ``target``; returns since when (the first block's time when already blocked)."""

    @abc.abstractmethod
    async def unblock(self, user_id: int, target: int) -> bool: ...

    @abc.abstractmethod
    async def blocks(self, user_id: int) -> list[tuple[User, int]]:
        """Whom ``user_id`` blocks, with since when, newest first."""

    @abc.abstractmethod
    async def blocking(self, a: int, b: int) -> bool:
        """Whether either of the two blocked the other."""

    @abc.abstractmethod
    async def blockers_among(self, user_id: int, others: Sequence[int]) -> set[int]:
        """Those of ``others`` who block ``user_id`` (they hide their presence from it)."""

    # -- remarks ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def set_remark(self, user_id: int, target: int, remark: str) -> None:
        """``""`` removes it."""

    @abc.abstractmethod
    async def remarks(self, user_id: int, targets: Sequence[int] | None = None) -> dict[int, str]:
        """``user_id``'s remarks (on ``targets`` only, if given)."""

    # -- chat preferences ---------------------------------------------------------------------------
    @abc.abstractmethod
    async def set_chat_prefs(
        self, user_id: int, conv: str, change: ChatPrefsChange, now: int, max_pinned: int
    ) -> ChatPrefs: ...

    @abc.abstractmethod
    async def chat_prefs(self, user_id: int, conv: str | None = None) -> list[ChatPrefs]: ...

    @abc.abstractmethod
    async def muted_by(self, conv: str, users: Sequence[int]) -> set[int]:
        """Those of ``users`` who muted ``conv``."""

    @abc.abstractmethod
    async def clear_marked_unread(self, user_id: int, conv: str, now: int) -> ChatPrefs | None:
        """Clear the mark if set; the new prefs then, else None (nothing changed)."""

    # -- last seen ----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def social(self, user_ids: Sequence[int]) -> dict[int, Social]:
        """Every user asked for (defaults for those without a row)."""

    @abc.abstractmethod
    async def set_last_seen_privacy(self, user_id: int, privacy: LastSeenPrivacy) -> None: ...

    @abc.abstractmethod
    async def set_last_seen(self, user_id: int, ts: int) -> None: ...

    # -- sessions -----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def live_sessions(self, user_id: int, now: int) -> list[SessionRow]:
        """Sessions not revoked whose refresh token has not expired, newest first."""

    @abc.abstractmethod
    async def touch_session(self, sid: str, now: int) -> None: ...

    @abc.abstractmethod
    async def revoke_user_session(self, user_id: int, sid: str) -> bool:
        """Revoke ``sid`` if it is ``user_id``'s and live; False otherwise."""

    @abc.abstractmethod
    async def update_password_hash(self, user_id: int, password_hash: str) -> None:
        """A new password that ends no session (the caller chose to keep the others)."""
