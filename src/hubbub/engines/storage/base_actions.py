"""Storage of message actions: edits, reactions, pins (events in the conversation's seq) and "delete for me".

Contract (tests/contract/test_storage.py, SQLite and PostgreSQL):
- ``apply_action`` changes its target and stores its event notice in **one** transaction, or neither: a
  refusal (``Rejected``: the group rules via ``admit``, a recalled or missing target, a limit) writes nothing.
- ``apply_actions`` does the same for several actions on one conversation in one transaction (a storm of
  reactions costs one lock and one seq allocation per batch, not per reaction); each is refused alone.
- It is idempotent twice over: a notice already stored (same sender and cmid, i.e. a retried action id) is
  returned as a duplicate, and an action that would not change the target (a second identical reaction, a
  pin of a pinned message, an edit to the same text) stores no event (``ActionResult.stored`` is None).
- The target's ``body`` is its current state (``edited``, ``reactions``), so history needs no join.
- An edit re-indexes its target for search in the same transaction: from its commit on, search finds the new
  text and never the old (engines/storage/base.py, ``SearchStorage``).
- ``recall_message`` forgets a message's actions (edit history, reactions, pin) and blanks its ``edit`` events.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from hubbub.core.models import Message

if TYPE_CHECKING:  # base.py's Storage includes this interface
    from hubbub.engines.storage.base import Admit, NewMessage, Rejected, Stored

#: Users named per emoji in ``body.reactions`` (the full list is ``reaction_users``).
REACTION_USERS_SHOWN = 10
#: Most pinned messages per conversation.
MAX_PINS = 50


class MessageChange(msgspec.Struct, kw_only=True):
    """What an action's event does to its target message (``seq`` of the notice's conversation)."""

    kind: Literal["edit", "react", "pin"]
    seq: int
    #: edit: the target's new body (``edited`` set); the text it replaces goes to the edit history.
    body: dict[str, Any] | None = None
    #: react
    emoji: str = ""
    #: react / pin: add (True) or remove (False).
    on: bool = True
    #: react: most distinct emoji on the message (``reaction_limit`` past it).
    max_distinct: int = 20


class ActionResult(msgspec.Struct, kw_only=True):
    #: The stored event, or None when the action changed nothing (nothing was stored).
    stored: Stored | None
    #: The target as it is now.
    target: Message


class Pin(msgspec.Struct, kw_only=True):
    seq: int
    by: int
    ts: int


class ActionStorage(abc.ABC):
    async def apply_action(
        self, notice: NewMessage, change: MessageChange, admit: Admit | None = None
    ) -> ActionResult | Rejected:
        """Apply ``change`` and store ``notice`` (its event) atomically; see the module contract."""
        return (await self.apply_actions(notice.conv, [(notice, change, admit)]))[0]

    @abc.abstractmethod
    async def apply_actions(
        self, conv: str, actions: list[tuple[NewMessage, MessageChange, Admit | None]]
    ) -> list[ActionResult | Rejected]:
        """Actions on one conversation, in order, in one transaction (one lock, one seq allocation): each as
        ``apply_action`` would, a refusal refusing that action alone. Results in the order given."""

    @abc.abstractmethod
    async def message_edits(self, conv: str, seq: int) -> list[tuple[str, int]]:
        """Earlier texts of an edited message, (text, ts) oldest first (the original first)."""

    @abc.abstractmethod
    async def reaction_users(self, conv: str, seq: int, emoji: str, after: int, limit: int) -> list[int]:
        """Who reacted with ``emoji``, by user id ascending, after ``after``."""

    @abc.abstractmethod
    async def pins(self, conv: str) -> list[Pin]:
        """The conversation's pinned seqs, newest pin first."""

    @abc.abstractmethod
    async def hide_messages(self, user_id: int, conv: str, seqs: list[int]) -> None:
        """Hide ``seqs`` from ``user_id``'s view (idempotent)."""

    @abc.abstractmethod
    async def hidden_in(self, conv: str) -> dict[int, list[int]]:
        """Every user's hidden seqs in ``conv`` (users who hid nothing are absent)."""

    @abc.abstractmethod
    async def hidden_seqs(self, user_id: int, conv: str, low: int = 0, high: int = 2**62) -> list[int]:
        """Seqs the user hid in ``conv`` with low < seq <= high, ascending."""
