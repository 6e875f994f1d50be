"""The storage interface: what services may ask of durable state.

Contract (tests/contract/test_storage.py runs it against SQLite and PostgreSQL):
- ``store_messages`` is atomic per call and assigns each conversation's seqs **gap-free** and strictly
  increasing inside the same transaction that stores the rows: a seq is never taken for a message that was
  not stored, and never reused, whatever happens to Redis or to a node.
- ``store_messages`` is idempotent on (sender, cmid): a message already stored is returned as it was, never
  stored twice, even when the duplicate is in the same call. A duplicate also says who should hear of the
  stored message now (``recipients``/``hot``, as for a new one, less members who joined after it), so the
  service can push it again: its first try may have been stored by a node that died before pushing.
- A message whose conversation id is not canonical (core/convs.py) is rejected alone, never its batch.
- Any failure to reach the database raises ``HubbubError(Code.UNAVAILABLE)``: nothing was stored.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import msgspec

from hubbub.core.errors import HubbubError
from hubbub.core.models import Account, FriendRequest, Group, GroupMember, Message, User
from hubbub.engines.storage.base_access import AccessStorage
from hubbub.engines.storage.base_actions import ActionStorage
from hubbub.engines.storage.base_integrations import IntegrationStorage
from hubbub.engines.storage.base_push import PushStorage
from hubbub.engines.storage.base_social import SocialStorage
from hubbub.engines.storage.lifecycle import LifecycleStorage


class NewMessage(msgspec.Struct, kw_only=True):
    """A message to store; ``members`` are the users the conversation is created for if it is new."""

    id: int
    conv: str
    sender: int
    cmid: str
    type: str
    body: dict[str, Any]
    ts: int
    members: tuple[int, ...] = ()
    #: Group members this message @mentions (``mention_all``: every member but the sender).
    mentions: tuple[int, ...] = ()
    mention_all: bool = False


class Stored(msgspec.Struct, kw_only=True):
    message: Message
    duplicate: bool
    #: Who should hear of it: the conversation's members at the moment it was stored (empty for hot
    #: groups, whose members are signalled instead of pushed to).
    recipients: tuple[int, ...] = ()
    #: Stored into a hot group: deliver push-pull.
    hot: bool = False
    #: Those of ``recipients`` who set do-not-disturb on the group: their pushes are marked silent unless
    #: the message mentions them (docs/protocol.md, "Do not disturb").
    quiet: tuple[int, ...] = ()


class Rejected(msgspec.Struct):
    """A message of a batch that was refused inside the storing transaction (nothing stored for it)."""

    #: What its sender is told (``forbidden``, ``muted``, ``group_frozen``, ``invalid_id``...).
    error: HubbubError


class MemberFacts(msgspec.Struct, frozen=True):
    role: str
    muted_until: int
    dnd: bool = False


class GroupFacts(msgspec.Struct, kw_only=True):
    """What the send rules need about a group, read inside the storing transaction."""

    group: Group
    #: Every member; for a hot group only the senders in the batch (the fan-out does not need the rest).
    members: dict[int, MemberFacts]
    hot: bool = False


#: Decides, inside the transaction, whether a group message may be stored: None to admit, or the error.
Admit = Callable[[NewMessage, GroupFacts], HubbubError | None]

#: Decides, inside a group change's transaction, whether the group as it is now allows the change: None to go
#: on, or the exception to raise (nothing is written).
GroupCheck = Callable[[Group], HubbubError | None]


class GroupChange(msgspec.Struct, kw_only=True):
    """A change to a group, applied atomically together with its system message."""

    add: dict[int, str] = {}
    remove: tuple[int, ...] = ()
    roles: dict[int, str] = {}
    mutes: dict[int, int] = {}
    fields: dict[str, Any] = {}
    #: Refuse (CONFLICT) if the member count would pass this; 0 means no check.
    max_members: int = 0


class GroupUpdate(msgspec.Struct, kw_only=True):
    group: Group
    stored: Stored
    #: Members before and after the change: the system message goes to both.
    before: tuple[int, ...]
    after: tuple[int, ...]


class RefreshToken(msgspec.Struct, kw_only=True):
    sid: str
    user_id: int
    expires_at: int
    spent: bool
    session_revoked: bool


class ConvState(msgspec.Struct, kw_only=True):
    """A member's view of one conversation, as the conversation list needs it."""

    conv: str
    max_seq: int
    read_seq: int
    min_seq: int
    updated_at: int
    unread: int
    last: Message | None
    mention_seq: int = 0
    #: A group the user set do-not-disturb on.
    dnd: bool = False
    #: Retention removed every message at or below this seq.
    purged_seq: int = 0


class GroupStorage(abc.ABC):
    """Groups: profile, members with roles, and changes that are system messages in the group's seq."""

    @abc.abstractmethod
    async def create_group(
        self, owner: int, fields: dict[str, Any], members: list[int], notice: NewMessage
    ) -> GroupUpdate:
        """Create the group and its conversation; ``notice.conv`` is filled in with the new id."""

    @abc.abstractmethod
    async def group(self, group_id: int) -> Group | None: ...

    @abc.abstractmethod
    async def groups_of(self, user_id: int) -> list[Group]: ...

    @abc.abstractmethod
    async def group_member(self, group_id: int, user_id: int) -> GroupMember | None: ...

    @abc.abstractmethod
    async def group_members(
        self, group_id: int, after_user: int, limit: int, prefix: str = ""
    ) -> list[GroupMember]:
        """Members ordered by user id, starting after ``after_user`` (keyset paging); with ``prefix``, only
        those whose username, nickname or group nickname starts with it (case-insensitive)."""

    @abc.abstractmethod
    async def member_floors(self, conv: str) -> dict[int, int]:
        """Every member of a conversation -> the seq they joined after (they see only what is newer)."""

    @abc.abstractmethod
    async def change_group(
        self, group_id: int, change: GroupChange, notice: NewMessage, check: GroupCheck | None = None
    ) -> GroupUpdate:
        """Apply ``change`` and store ``notice`` in one transaction. New members see from ``notice`` on.

        ``check`` sees the group as it is after the group is locked, so a change racing a freeze or a
        dismissal is either applied before it or refused by ``check`` — never applied after it.
        """

    @abc.abstractmethod
    async def set_member_prefs(
        self, group_id: int, user_id: int, fields: dict[str, Any]
    ) -> GroupMember | None:
        """Personal settings (group nickname, do-not-disturb): no system message."""

    @abc.abstractmethod
    async def readers(self, conv: str, seq: int, exclude: int, limit: int) -> tuple[int, int, list[int]]:
        """Members other than ``exclude`` (the sender) who could see message ``seq`` (they joined before it):
        (how many of them have read it, how many there are, up to ``limit`` of the readers). A member who
        joined later starts with a read seq past ``seq`` but never saw it, so is counted in neither."""


class UploadRecord(msgspec.Struct, kw_only=True):
    """One user's upload of a blob (docs/media.md). ``meta`` holds what messages carry (width, duration...)."""

    id: str
    owner: int
    kind: str
    blob: str
    thumb: str | None
    size: int
    mime: str
    name: str
    meta: dict[str, Any]
    created_at: int


class MediaStorage(abc.ABC):
    """Upload records, their blobs' bookkeeping, and what decides who may download them.

    Contract: ``touch_blob`` and ``create_upload`` together make a blob safe from the collector: a blob is only
    deleted by ``delete_blob_row`` if it is untouched since the cutoff and no upload names it, checked in one
    transaction, so an upload racing the collector keeps its blob.

    Quota: an upload in progress holds a reservation (``reserve_quota``), raised as its body streams. Every
    check of an owner's total (``reserve_quota``, ``create_upload`` with a quota) runs in one transaction
    serialized with every other check of that owner (SQLite's single writer; a PostgreSQL advisory lock on the
    owner), so concurrent uploads together never hold more than the quota, on one node or many.
    """

    @abc.abstractmethod
    async def touch_blob(self, key: str, size: int, now: int) -> None:
        """Record (or refresh) a blob about to be referenced."""

    @abc.abstractmethod
    async def reserve_quota(
        self, reservation: str, owner: int, size: int, quota: int, now: int, expires_at: int
    ) -> bool:
        """Set the reservation to ``size`` bytes (creating it) if the owner's uploads, their other unexpired
        reservations and ``size`` fit in ``quota``; False, changing nothing, if they do not. The owner's
        expired reservations (left by a crashed node) are deleted on the way."""

    @abc.abstractmethod
    async def release_quota(self, reservation: str) -> None:
        """Drop a reservation (the upload failed or was stored); nothing if there is none."""

    @abc.abstractmethod
    async def create_upload(
        self, record: UploadRecord, reservation: str | None = None, quota: int | None = None
    ) -> bool:
        """Store the record, converting ``reservation`` (deleted in the same transaction). With ``quota``,
        only if the owner's uploads, their other unexpired reservations and this one fit in it: False, storing
        nothing, if not (a re-encoded image can be larger than the bytes it reserved)."""

    @abc.abstractmethod
    async def upload(self, upload_id: str) -> UploadRecord | None: ...

    @abc.abstractmethod
    async def upload_usage(self, owner: int) -> int:
        """Bytes of all the owner's uploads (the quota counts originals, not thumbnails)."""

    @abc.abstractmethod
    async def add_upload_ref(self, upload_id: str, sender: int, now: int) -> None:
        """``sender`` is putting the upload into a message (idempotent)."""

    @abc.abstractmethod
    async def upload_in_visible_message(self, upload_id: str, user_id: int, types: tuple[str, ...]) -> bool:
        """Whether a stored, unrecalled message of one of ``types`` naming the upload is in a conversation
        ``user_id`` belongs to, at or after the point they joined it."""

    @abc.abstractmethod
    async def upload_is_avatar(self, upload_id: str) -> bool:
        """Whether the upload is its owner's avatar, or the avatar of a group its owner belongs to and set
        it on (``groups.avatar_by``): an avatar someone else named publishes nothing."""

    @abc.abstractmethod
    async def settle_upload_refs(self, cutoff: int, types: tuple[str, ...], limit: int) -> tuple[int, int]:
        """For unconfirmed references made before ``cutoff``: confirm those whose message was stored, delete
        the rest (the send was refused). Returns (confirmed, deleted)."""

    @abc.abstractmethod
    async def delete_unused_uploads(self, cutoff: int, limit: int) -> int:
        """Delete uploads made before ``cutoff`` that no message references and no one uses as an avatar."""

    @abc.abstractmethod
    async def unreferenced_blobs(self, cutoff: int, limit: int) -> list[str]:
        """Blobs untouched since ``cutoff`` that no upload names (candidates for ``delete_blob_row``)."""

    @abc.abstractmethod
    async def delete_blob_row(self, key: str, cutoff: int) -> bool:
        """Forget the blob if it is still untouched since ``cutoff`` and unnamed; True if it was forgotten (the
        caller then deletes the bytes)."""


class UserRecord(msgspec.Struct, kw_only=True):
    """A user as an administrator sees them."""

    user: User
    banned: bool
    is_admin: bool
    created_at: int
    #: A delivery canary's account (hubbub/proof/canary.py).
    canary: bool = False
    #: When a timed ban ends by itself (ms; 0: never, or not banned).
    banned_until: int = 0
    ban_reason: str = ""
    #: Closed by an admin (services/moderation.py ``delete_user``): anonymised, no login possible.
    deleted: bool = False


class AdminStorage(abc.ABC):
    """What server administration needs (services/admin.py, docs/operations.md).

    Contract: every change to the word list bumps ``words_version`` in the same transaction, so a node that
    sees the version unchanged may keep its cached list.
    """

    @abc.abstractmethod
    async def set_user_flags(
        self,
        user_id: int,
        *,
        banned: bool | None = None,
        is_admin: bool | None = None,
        canary: bool | None = None,
    ) -> UserRecord | None:
        """Set the flags given; None if there is no such user."""

    @abc.abstractmethod
    async def purge_canary_messages(self, before_ts: int) -> int:
        """Delete messages sent by canary accounts before ``before_ts`` (ms); how many."""

    @abc.abstractmethod
    async def canary_user_ids(self) -> list[int]:
        """The accounts marked canary, ascending (a handful: the canary's synthetic users)."""

    @abc.abstractmethod
    async def ban_user(self, user_id: int) -> UserRecord | None:
        """Set the banned flag and revoke every session of the user, in one transaction; None if there is no
        such user."""

    @abc.abstractmethod
    async def user_record(self, user_id: int) -> UserRecord | None: ...

    @abc.abstractmethod
    async def user_records(self, query: str, after: int, limit: int) -> list[UserRecord]:
        """Users with an id above ``after``, ascending; ``query`` (if any) is a username/nickname prefix."""

    @abc.abstractmethod
    async def active_user_ids(self, after: int, limit: int) -> list[int]:
        """Ids above ``after`` of users who are not banned and not server accounts (``~`` names), ascending."""

    @abc.abstractmethod
    async def words(self) -> tuple[int, list[str]]:
        """(words_version, the sensitive words, sorted)."""

    @abc.abstractmethod
    async def words_version(self) -> int: ...

    @abc.abstractmethod
    async def change_words(self, add: list[str], remove: list[str], now: int) -> int:
        """Add and remove words (lower case) in one transaction; returns how many rows changed."""

    @abc.abstractmethod
    async def system_user(self, username: str, nickname: str, now: int) -> int:
        """The id of the server's own account (created on first use, with no usable password)."""


class SearchQuery(msgspec.Struct, kw_only=True):
    """A message search by ``user_id`` (core/searchtext.py makes ``terms``; at least one)."""

    user_id: int
    terms: list[str]
    conv: str | None = None
    sender: int | None = None
    #: Message types (core/searchtext.KINDS); empty means all of them.
    kinds: tuple[str, ...] = ()
    #: ``ts`` range in milliseconds: since is inclusive, until exclusive.
    since: int | None = None
    until: int | None = None
    #: The paging cursor: only messages with an index position (``rid``) below this.
    before: int | None = None
    limit: int = 20
    #: A query of short terms only (under three characters: no trigram) reads at most this many of the
    #: newest visible messages in scope per call, and says where it stopped.
    short_scan: int = 20_000


class SearchHit(msgspec.Struct):
    message: Message
    #: The message's index position: rowid (SQLite) or ``messages.rid`` (PostgreSQL); newest is highest.
    rid: int


class SearchPage(msgspec.Struct, kw_only=True):
    hits: list[SearchHit]
    #: Where the next page starts (pass as ``before``); None when nothing older can match.
    next_before: int | None
    #: False when a short-term query stopped at ``short_scan`` messages: older ones were not read yet.
    complete: bool = True


class IndexProgress(msgspec.Struct, kw_only=True):
    #: Messages (re)indexed by this call.
    indexed: int
    #: Every message at or below this index position is indexed (or was found not to exist).
    watermark: int
    #: The newest index position stored.
    newest: int
    #: False when another node holds the indexer lock (this call did nothing).
    ran: bool = True


class SearchStorage(abc.ABC):
    """Message search: an index kept behind the messages table, and the visibility rules at query time.

    Contract (tests/contract/test_search.py runs it on SQLite and PostgreSQL):
    - Indexing never happens in the storing transaction: ``index_messages`` tails the messages by their
      index position (``rid``) from a watermark stored in the database, a batch per call. Only one caller at
      a time indexes (the SQLite writer lock; a PostgreSQL advisory lock — others return ``ran=False``), and
      every write is idempotent, so a node that dies mid-batch costs nothing but the batch, redone.
    - PostgreSQL hands out ``rid`` from a sequence before commit, so a smaller rid can become visible after
      a larger one: the watermark stops below such a hole and the rows above it are indexed anyway; a hole
      still empty after ``GAP_WAIT_S`` is a rolled-back send and is passed over.
    - ``search_messages`` returns only what ``user_id`` may read: messages of conversations they are a member
      of, newer than the seq they joined after (``min_seq``; a removed member has no row, so sees nothing),
      not recalled, of a searchable type, containing every term (case-insensitive substring); newest first.
      Each hit is rechecked against the message's current text, so an index entry older than an edit never
      returns a message that no longer matches.
    - ``reindex_message`` replaces a message's entry by its current text (or removes it); an edit does it in
      its own transaction (``apply_actions``). Re-indexing and indexer passes never overlap (PostgreSQL: the
      indexer's advisory lock, held shared by a re-index), so neither fails on the other's entry and a pass
      that read a message before an edit never writes the old text over the new.
    """

    @abc.abstractmethod
    async def search_messages(self, query: SearchQuery) -> SearchPage: ...

    @abc.abstractmethod
    async def index_messages(self, batch: int) -> IndexProgress:
        """Index up to ``batch`` messages past the watermark, in one transaction."""

    @abc.abstractmethod
    async def reindex_message(self, conv: str, seq: int) -> None:
        """Replace the index entry of message ``seq`` of ``conv`` by its current text (or drop it)."""

    @abc.abstractmethod
    async def search_backlog(self) -> IndexProgress:
        """(watermark, newest) without indexing anything: how far the index is behind."""

    @abc.abstractmethod
    async def messages_around(
        self, conv: str, seq: int, before: int, after: int, min_seq: int
    ) -> tuple[list[Message], bool, bool]:
        """Up to ``before`` messages with min_seq < s <= seq and ``after`` with s > seq, ascending; and whether
        older and newer messages exist beyond them (a page to jump to a search result)."""


class Storage(
    GroupStorage,
    MediaStorage,
    AdminStorage,
    LifecycleStorage,
    SearchStorage,
    AccessStorage,
    SocialStorage,
    PushStorage,
    IntegrationStorage,
    ActionStorage,
):
    """Everything durable: accounts, sessions, friends, messages, and (inherited) groups and uploads."""

    # -- lifecycle -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and bring the schema to the newest migration."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> None:
        """Raise UNAVAILABLE unless the database answers a trivial query."""

    @abc.abstractmethod
    async def schema_revision(self) -> str | None:
        """The database's migration revision; None for an empty database (``hubbub admin`` checks it)."""

    @abc.abstractmethod
    async def migrate(
        self, pending: Callable[[list[tuple[str, str]]], None], step: Callable[[str, str], None]
    ) -> int:
        """Apply the pending migrations in one transaction (all or nothing): ``pending`` is told them
        (revision, description) first, ``step`` each before it runs. Returns how many were applied."""

    # -- accounts -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_user(self, username: str, nickname: str, password_hash: str, now: int) -> User:
        """Raise USERNAME_TAKEN if the name (case-insensitively) exists."""

    @abc.abstractmethod
    async def account_by_username(self, username: str) -> Account | None: ...

    @abc.abstractmethod
    async def account(self, user_id: int) -> Account | None: ...

    @abc.abstractmethod
    async def users(self, ids: list[int]) -> dict[int, User]: ...

    @abc.abstractmethod
    async def update_profile(self, user_id: int, fields: dict[str, Any]) -> User | None: ...

    @abc.abstractmethod
    async def set_password(self, user_id: int, password_hash: str, keep_sid: str | None) -> list[str]:
        """Set the password hash and revoke every live session but ``keep_sid``, in one transaction;
        return the revoked session ids."""

    @abc.abstractmethod
    async def search_users(self, prefix: str, limit: int) -> list[User]:
        """Users whose username or nickname starts with ``prefix`` (case-insensitive), by id."""

    # -- sessions -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_session(
        self, sid: str, user_id: int, token_hash: str, expires_at: int, now: int
    ) -> bool:
        """Create a session with its first refresh token, unless the user is banned (or gone): False then.
        The ban is read in the creating transaction, ordered against ``ban_user`` (a row lock where the
        database has them), so a session never outlives a ban that committed before or during its creation."""

    @abc.abstractmethod
    async def refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    @abc.abstractmethod
    async def rotate_refresh_token(self, old_hash: str, new_hash: str, sid: str, expires_at: int) -> bool:
        """Spend ``old_hash`` and issue ``new_hash`` atomically; False if it was already spent (a replay)."""

    @abc.abstractmethod
    async def revoke_session(self, sid: str) -> None: ...

    @abc.abstractmethod
    async def revoke_sessions(self, user_id: int, keep_sid: str | None) -> list[str]:
        """Revoke every live session of the user but ``keep_sid``; return the revoked ids."""

    @abc.abstractmethod
    async def session_active(self, sid: str) -> bool: ...

    # -- friends --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def are_friends(self, a: int, b: int) -> bool: ...

    @abc.abstractmethod
    async def friends(self, user_id: int) -> list[tuple[User, int]]:
        """(friend, since) pairs."""

    @abc.abstractmethod
    async def friend_ids(self, user_id: int) -> list[int]: ...

    @abc.abstractmethod
    async def add_friendship(self, a: int, b: int, now: int) -> None: ...

    @abc.abstractmethod
    async def remove_friendship(self, a: int, b: int) -> bool: ...

    @abc.abstractmethod
    async def create_friend_request(self, from_id: int, to_id: int, note: str, now: int) -> FriendRequest: ...

    @abc.abstractmethod
    async def friend_request(self, request_id: int) -> FriendRequest | None: ...

    @abc.abstractmethod
    async def pending_request(self, from_id: int, to_id: int) -> FriendRequest | None: ...

    @abc.abstractmethod
    async def answer_friend_request(self, request_id: int, status: str) -> bool:
        """Move a pending request to ``status``; False if it was no longer pending (lost a race)."""

    @abc.abstractmethod
    async def accept_friend_request(self, request_id: int, now: int) -> bool:
        """Mark a pending request accepted and make its two users friends, in one transaction: either both
        or neither. False, changing nothing, if it was no longer pending (lost a race)."""

    @abc.abstractmethod
    async def friend_requests(self, user_id: int) -> tuple[list[FriendRequest], list[FriendRequest]]:
        """Pending (incoming, outgoing) requests."""

    # -- messages -------------------------------------------------------------------------------
    @abc.abstractmethod
    async def store_messages(
        self, batch: list[NewMessage], admit: Admit | None = None
    ) -> list[Stored | Rejected]:
        """Store a batch in one transaction; results in the order given. See the module contract.

        Group messages are checked by ``admit`` against the group's members as they are inside the
        transaction (after the conversation is locked), so a send racing a kick is either stored before the
        kick's notice or refused — never stored after it.
        """

    @abc.abstractmethod
    async def messages_after(self, conv: str, after_seq: int, limit: int) -> list[Message]:
        """Ascending, seq > after_seq."""

    @abc.abstractmethod
    async def messages_before(self, conv: str, before_seq: int, limit: int, min_seq: int) -> list[Message]:
        """Ascending, the newest ``limit`` with min_seq < seq < before_seq."""

    @abc.abstractmethod
    async def message(self, conv: str, seq: int) -> Message | None: ...

    @abc.abstractmethod
    async def recall_message(
        self, seq: int, notice: NewMessage, admit: Admit | None = None
    ) -> Stored | Rejected:
        """Blank message ``seq`` of ``notice.conv`` and store ``notice`` (its ``recall`` notice) in one
        transaction: either both happen or neither does.

        In a group, ``admit`` sees the group and the recaller as they are inside the transaction (after the
        conversation is locked), as for ``store_messages``; a refusal is returned as ``Rejected`` and blanks
        nothing. Idempotent on (sender, cmid) like ``store_messages``: a notice already stored is returned as
        a duplicate.
        """

    @abc.abstractmethod
    async def member_state(self, conv: str, user_id: int) -> tuple[int, int] | None:
        """(read_seq, min_seq) of a member, or None if they are not one."""

    @abc.abstractmethod
    async def set_read_seq(self, conv: str, user_id: int, seq: int) -> int | None:
        """Raise the member's read seq to ``seq`` (never lower, never past max_seq); the result, or None."""

    @abc.abstractmethod
    async def conversations_of(self, user_id: int) -> list[ConvState]:
        """Every conversation the user is a member of, newest activity first."""

    @abc.abstractmethod
    async def peer_read_seqs(self, user_id: int) -> dict[str, int]:
        """For each private conversation of the user, how far the other member has read."""
