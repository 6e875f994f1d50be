"""The storage interface for integrations (issue 21; docs/integrations.md): bot accounts and their tokens,
incoming and outgoing webhooks with their delivery log, and OpenID Connect sign-ins.

Contract (tests/contract/test_integrations_storage.py runs it against SQLite and PostgreSQL):
- a bot is a user row marked ``is_bot`` with no usable password; a token is found only by its hash;
- ``claim_webhook`` gives a webhook's lease to one node at a time (``leases.claim``: free once its time is
  up, renewed by its holder); ``advance_webhook`` and ``fail_webhook``
  change a webhook only for the node holding its lease, so a node that lost it cannot move its cursor;
- ``take_oidc_flow`` and ``take_oidc_ticket`` succeed once per state/ticket: a replay gets None;
- any failure to reach the database raises ``HubbubError(Code.UNAVAILABLE)``.
"""

from __future__ import annotations

import abc

import msgspec

from hubbub.core.models import User

#: What a bot token may do (docs/integrations.md, "Scopes").
SCOPES = ("send", "read", "profile")
#: Outgoing webhook event kinds.
EVENTS = ("message", "mention", "member")


class Bot(msgspec.Struct, kw_only=True):
    user: User
    owner_id: int
    created_at: int


class BotToken(msgspec.Struct, kw_only=True):
    """A bot token as listed to its owner (never the secret, which is shown once)."""

    id: int
    bot_id: int
    scopes: list[str]
    name: str = ""
    created_at: int
    revoked: bool = False


class BotCredential(msgspec.Struct, kw_only=True):
    """What authenticating a bot token finds."""

    token_id: int
    bot_id: int
    scopes: tuple[str, ...]
    revoked: bool
    banned: bool


class IncomingHook(msgspec.Struct, kw_only=True):
    id: int
    conv: str
    bot_id: int
    owner_id: int
    name: str = ""
    created_at: int
    revoked: bool = False


class OutgoingHook(msgspec.Struct, kw_only=True):
    id: int
    owner_id: int
    conv: str
    url: str
    #: The HMAC key; shown to the owner (it signs what they receive).
    secret: str
    events: list[str]
    bot_id: int | None = None
    #: Events up to this seq were delivered (or skipped as not subscribed).
    cursor_seq: int
    enabled: bool = True
    #: Consecutive failed attempts of the event at the cursor.
    failures: int = 0
    next_attempt_at: int = 0
    created_at: int


class Delivery(msgspec.Struct, kw_only=True):
    """One delivery attempt, as kept in a webhook's log."""

    webhook_id: int
    event_id: str
    event: str
    attempt: int
    #: HTTP status; 0 when no response came (refused address, timeout, connection error).
    status: int
    ok: bool
    #: The start of the response body, or the error.
    response: str = ""
    duration_ms: int
    ts: int
    node: str = ""


class OidcFlow(msgspec.Struct, kw_only=True):
    state: str
    verifier: str
    nonce: str
    redirect_uri: str
    created_at: int


class IntegrationStorage(abc.ABC):
    # -- bots --------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_bot(self, username: str, nickname: str, owner_id: int, now: int) -> User:
        """A bot account owned by ``owner_id``; USERNAME_TAKEN if the name exists."""

    @abc.abstractmethod
    async def bots(self, owner_id: int | None) -> list[Bot]:
        """The bots of ``owner_id`` (None: every bot), oldest first."""

    @abc.abstractmethod
    async def bot(self, bot_id: int) -> Bot | None: ...

    @abc.abstractmethod
    async def add_bot_token(
        self, bot_id: int, token_hash: str, scopes: list[str], name: str, now: int
    ) -> BotToken: ...

    @abc.abstractmethod
    async def bot_tokens(self, bot_id: int) -> list[BotToken]: ...

    @abc.abstractmethod
    async def revoke_bot_token(self, bot_id: int, token_id: int) -> bool:
        """False if the bot has no such token."""

    @abc.abstractmethod
    async def bot_credential(self, token_hash: str) -> BotCredential | None: ...

    # -- incoming webhooks -------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_incoming_hook(
        self, token_hash: str, conv: str, bot_id: int, owner_id: int, name: str, now: int
    ) -> IncomingHook: ...

    @abc.abstractmethod
    async def incoming_hook(self, token_hash: str) -> IncomingHook | None: ...

    @abc.abstractmethod
    async def incoming_hooks(self, owner_id: int) -> list[IncomingHook]: ...

    @abc.abstractmethod
    async def revoke_incoming_hook(self, owner_id: int, hook_id: int) -> bool: ...

    # -- outgoing webhooks -------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_outgoing_hook(
        self, owner_id: int, conv: str, url: str, secret: str, events: list[str], bot_id: int | None, now: int
    ) -> OutgoingHook:
        """Starts at the conversation's newest seq: it delivers what happens from now on."""

    @abc.abstractmethod
    async def outgoing_hooks(self, owner_id: int | None) -> list[OutgoingHook]:
        """The webhooks of ``owner_id``; None: every enabled one (the dispatcher's list)."""

    @abc.abstractmethod
    async def webhooks_waiting(self) -> set[int]:
        """The enabled webhooks whose conversation holds a message past their cursor (the dispatcher's sweep:
        one query, whatever the number of webhooks)."""

    @abc.abstractmethod
    async def outgoing_hook(self, hook_id: int) -> OutgoingHook | None: ...

    @abc.abstractmethod
    async def delete_outgoing_hook(self, hook_id: int) -> bool: ...

    @abc.abstractmethod
    async def enable_outgoing_hook(self, hook_id: int) -> bool:
        """Enabled again with its failures cleared (it resumes at its cursor)."""

    @abc.abstractmethod
    async def claim_webhook(self, hook_id: int, node: str, now: int, lease_ms: int) -> OutgoingHook | None:
        """The webhook, now leased to ``node`` until now + lease_ms, if it is enabled, due and its lease is
        free (its time is up: ``until <= now``) or already ``node``'s; None otherwise."""

    @abc.abstractmethod
    async def advance_webhook(self, hook_id: int, node: str, cursor_seq: int) -> bool:
        """Move the cursor (and clear failures) if ``node`` holds the lease."""

    @abc.abstractmethod
    async def fail_webhook(
        self, hook_id: int, node: str, failures: int, next_attempt_at: int, disable: bool
    ) -> bool: ...

    @abc.abstractmethod
    async def release_webhooks(self, node: str, hook_id: int | None = None) -> None:
        """Give up every lease of ``node`` (it is stopping), or only that of ``hook_id`` (its worker went idle,
        so the next node to store a message there can claim it at once)."""

    @abc.abstractmethod
    async def log_delivery(self, delivery: Delivery, keep: int, advance_to: int | None = None) -> bool:
        """Append to the webhook's log, keeping its newest ``keep`` entries; with ``advance_to``, in the same
        transaction, ``advance_webhook`` for ``delivery.node`` (one write per delivered event). False when
        the cursor was to move and did not (the lease is another node's)."""

    @abc.abstractmethod
    async def deliveries(self, hook_id: int, limit: int) -> list[Delivery]:
        """Newest first."""

    # -- OpenID Connect ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_oidc_flow(self, flow: OidcFlow) -> None: ...

    @abc.abstractmethod
    async def take_oidc_flow(self, state: str, not_before: int) -> OidcFlow | None:
        """The flow, marked used; None if unknown, used already (a replay) or created before not_before."""

    @abc.abstractmethod
    async def set_oidc_ticket(self, state: str, ticket_hash: str, user_id: int) -> None: ...

    @abc.abstractmethod
    async def take_oidc_ticket(self, ticket_hash: str, not_before: int) -> int | None:
        """The user the ticket signs in, once; None if unknown, used or too old."""

    @abc.abstractmethod
    async def oidc_user(self, issuer: str, subject: str) -> int | None: ...

    @abc.abstractmethod
    async def link_oidc(self, issuer: str, subject: str, user_id: int, now: int) -> None: ...
