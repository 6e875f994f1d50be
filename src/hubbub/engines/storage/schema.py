"""Tables, as SQLAlchemy Core metadata. Migrations (hubbub/migrations/versions) must match this file."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("username", String(32), nullable=False, unique=True),
    Column("username_lower", String(32), nullable=False, unique=True),
    Column("nickname", String(64), nullable=False),
    Column("signature", String(256), nullable=False, server_default=""),
    Column("avatar", String(128), nullable=True),
    Column("password_hash", String(256), nullable=False),
    Column("banned", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    # May use the admin routes (docs/operations.md); the first user of a fresh server by default.
    Column("is_admin", Boolean, nullable=False, server_default=false()),
    # Set when the account was closed (docs/operations.md, "Account deletion"): the row stays, anonymised,
    # so the messages it sent keep a sender ("Deleted user").
    Column("deleted_at", BigInteger, nullable=True),
    #: A delivery canary's synthetic account (hubbub/proof/canary.py): hidden from user search.
    Column("canary", Boolean, nullable=False, server_default=false()),
    # With ``banned``: when the ban ends by itself (ms; 0: never), and the reason the admin gave.
    Column("banned_until", BigInteger, nullable=False, server_default="0"),
    Column("ban_reason", String(256), nullable=False, server_default=""),
)

# A session is one login: its refresh tokens form a family, and access tokens carry its id (``sid``) so
# revoking the session ends both.
sessions = Table(
    "sessions",
    metadata,
    Column("sid", String(32), primary_key=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("revoked", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("sid", String(32), nullable=False, index=True),
    Column("expires_at", BigInteger, nullable=False),
    Column("spent", Boolean, nullable=False, server_default=false()),
)

friendships = Table(
    "friendships",
    metadata,
    Column("user_id", Integer, nullable=False),
    Column("friend_id", Integer, nullable=False),
    Column("since", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "friend_id"),
)

friend_requests = Table(
    "friend_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("from_id", Integer, nullable=False),
    Column("to_id", Integer, nullable=False, index=True),
    Column("note", String(256), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_friend_requests_from", "from_id", "status"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("conv", String(48), primary_key=True),
    Column("max_seq", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # Retention removed every message at or below this seq (docs/protocol.md, "Retention and the purged
    # floor"); the messages above it are all there.
    Column("purged_seq", BigInteger, nullable=False, server_default="0"),
)

# One row per (member, conversation): the member's read position and, for groups, the seq they joined after.
conv_members = Table(
    "conv_members",
    metadata,
    Column("user_id", Integer, nullable=False),
    Column("conv", String(48), nullable=False),
    Column("read_seq", BigInteger, nullable=False, server_default="0"),
    Column("min_seq", BigInteger, nullable=False, server_default="0"),
    # The newest seq that @mentioned this member (or @all); a mention is unread while above read_seq.
    Column("mention_seq", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("user_id", "conv"),
    Index("ix_conv_members_conv", "conv"),
)

messages = Table(
    "messages",
    metadata,
    Column("conv", String(48), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("id", BigInteger, nullable=False),
    Column("sender", Integer, nullable=False),
    Column("cmid", String(96), nullable=False),
    Column("type", String(16), nullable=False),
    Column("body", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("recalled", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("conv", "seq"),
    UniqueConstraint("sender", "cmid", name="uq_messages_sender_cmid"),
)

groups = Table(
    "groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("avatar", String(128), nullable=True),
    Column("notice", String(1024), nullable=False, server_default=""),
    Column("owner_id", Integer, nullable=False),
    Column("invite_policy", String(16), nullable=False, server_default="members"),
    Column("muted_all", Boolean, nullable=False, server_default=false()),
    Column("dismissed", Boolean, nullable=False, server_default=false()),
    Column("member_count", Integer, nullable=False, server_default="0"),
    Column("created_at", BigInteger, nullable=False),
    # Marked hot by an admin: push-pull delivery whatever the size (big groups are hot by size anyway).
    Column("hot", Boolean, nullable=False, server_default=false()),
    # Frozen by a server admin: read-only, every send is refused with ``group_frozen``.
    Column("frozen", Boolean, nullable=False, server_default=false()),
    # Who set ``avatar``: the avatar is public only when its uploader set it (docs/media.md).
    Column("avatar_by", Integer, nullable=True),
    # Listed in the public directory and joinable without an invite (docs/protocol.md, "Join links").
    Column("public", Boolean, nullable=False, server_default=false()),
    # A join by link or from the directory becomes a request that the owner or an admin answers.
    Column("join_approval", Boolean, nullable=False, server_default=false()),
    # Who may pin messages: "admins" (owner and admins) or "members" (docs/protocol.md, "Message actions").
    Column("pin_policy", String(16), nullable=False, server_default="admins"),
)

group_members = Table(
    "group_members",
    metadata,
    Column("group_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("role", String(16), nullable=False),
    Column("nickname", String(64), nullable=False, server_default=""),
    Column("dnd", Boolean, nullable=False, server_default=false()),
    Column("muted_until", BigInteger, nullable=False, server_default="0"),
    Column("joined_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("group_id", "user_id"),
    Index("ix_group_members_user", "user_id"),
)

# -- media (docs/media.md) --------------------------------------------------------------------------
# A blob is stored once per content hash; ``touched_at`` is refreshed by every upload of it, and the garbage
# collector removes only blobs untouched for its grace period that no upload names.
blobs = Table(
    "blobs",
    metadata,
    Column("key", String(80), primary_key=True),
    Column("size", BigInteger, nullable=False),
    Column("touched_at", BigInteger, nullable=False),
    Index("ix_blobs_touched_at", "touched_at"),
)

# One row per upload by a user: their name for it, the sniffed type and the metadata messages carry.
uploads = Table(
    "uploads",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", Integer, nullable=False),
    Column("kind", String(8), nullable=False),
    Column("blob", String(80), nullable=False),
    Column("thumb", String(80), nullable=True),
    Column("size", BigInteger, nullable=False),
    Column("mime", String(100), nullable=False),
    Column("name", String(255), nullable=False),
    Column("meta", Text, nullable=False, server_default="{}"),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_uploads_owner", "owner_id"),
    Index("ix_uploads_blob", "blob"),
    Index("ix_uploads_thumb", "thumb"),
    Index("ix_uploads_created_at", "created_at"),
)

# Who put an upload into a message (the message itself is found by its sender and body); ``confirmed`` once
# the collector saw that message stored, so a refused send does not keep an upload alive for ever.
upload_refs = Table(
    "upload_refs",
    metadata,
    Column("upload_id", String(32), nullable=False),
    Column("sender", Integer, nullable=False),
    Column("confirmed", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
    PrimaryKeyConstraint("upload_id", "sender"),
)

# Bytes an upload in progress holds against its owner's quota: taken, and raised as the body streams, only
# while the owner's uploads plus their live reservations fit (one locked transaction); deleted in the
# transaction that stores the upload, or when the upload fails; ignored once expired (a crashed node's).
upload_reservations = Table(
    "upload_reservations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("owner_id", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Index("ix_upload_reservations_owner", "owner_id"),
)

# Avatars are upload ids: anyone logged in may fetch them, found through these indexes.
Index("ix_users_avatar", users.c.avatar)
Index("ix_groups_avatar", groups.c.avatar)

# -- operations (docs/operations.md) ----------------------------------------------------------------
# The sensitive-word list, edited by admins; every node caches it and reloads when ``words_version`` in
# ``settings`` changes.
sensitive_words = Table(
    "sensitive_words",
    metadata,
    Column("word", String(64), primary_key=True),
    Column("added_at", BigInteger, nullable=False),
)

# Small server-wide values: ``words_version`` (bumped by every word-list change), ``system_user`` (the id of
# the account that sends notices).
settings = Table(
    "settings",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# -- data lifecycle (docs/operations.md, "Retention") -----------------------------------------------
# A conversation's own retention: ``days`` 0 keeps it for ever; without a row the server default applies.
retention_policies = Table(
    "retention_policies",
    metadata,
    Column("conv", String(48), primary_key=True),
    Column("days", Integer, nullable=False),
    Column("set_by", Integer, nullable=False),
    Column("set_at", BigInteger, nullable=False),
)

# Export jobs (a user's data, or a conversation for an admin). ``active_key`` is set while the job is pending
# or building, and unique: the same export asked for twice while one runs is refused by the database itself.
exports = Table(
    "exports",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Integer, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("subject", String(48), nullable=False),
    Column("status", String(16), nullable=False),
    Column("active_key", String(80), nullable=True, unique=True),
    Column("size", BigInteger, nullable=False, server_default="0"),
    Column("error", Text, nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("finished_at", BigInteger, nullable=False, server_default="0"),
    Column("expires_at", BigInteger, nullable=False, server_default="0"),
)

# -- access control (docs/operations.md, "Registration and invites"; services/access.py) -------------
# Registration invite codes: a use count and an optional expiry; ``uses`` only grows, in the transaction
# that creates the account it admitted.
invites = Table(
    "invites",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("created_by", Integer, nullable=False, index=True),
    Column("max_uses", Integer, nullable=False),
    Column("uses", Integer, nullable=False, server_default="0"),
    # ms; 0: never expires.
    Column("expires_at", BigInteger, nullable=False, server_default="0"),
    Column("revoked", Boolean, nullable=False, server_default=false()),
    Column("note", String(256), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
)

# A group's join links (and their QR codes): revocable, optional expiry (0: none) and use limit (0: none).
group_links = Table(
    "group_links",
    metadata,
    Column("code", String(32), primary_key=True),
    Column("group_id", Integer, nullable=False, index=True),
    Column("created_by", Integer, nullable=False),
    Column("max_uses", Integer, nullable=False, server_default="0"),
    Column("uses", Integer, nullable=False, server_default="0"),
    Column("expires_at", BigInteger, nullable=False, server_default="0"),
    Column("revoked", Boolean, nullable=False, server_default=false()),
    Column("created_at", BigInteger, nullable=False),
)

# Requests to join a group that needs approval: ``pending`` until the owner or an admin approves or declines.
join_requests = Table(
    "join_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    # The link it came through ("" from the public directory).
    Column("link", String(32), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("decided_by", Integer, nullable=True),
    Column("decided_at", BigInteger, nullable=True),
    Index("ix_join_requests_group", "group_id", "status"),
    Index("ix_join_requests_user", "user_id", "group_id"),
)

# Reports by users; ``snapshot`` is the reported thing as it was when reported (JSON), so a later recall or
# edit does not hide what was reported.
reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("reporter", Integer, nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("target", String(64), nullable=False),
    Column("reason", String(1024), nullable=False),
    Column("snapshot", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("outcome", String(32), nullable=False, server_default=""),
    Column("handled_by", Integer, nullable=True),
    Column("handled_at", BigInteger, nullable=True),
    Column("note", String(1024), nullable=False, server_default=""),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_reports_status", "status", "id"),
)

# Every admin action. Append-only: the storage has no method that updates or deletes a row.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", BigInteger, nullable=False, index=True),
    Column("actor", Integer, nullable=False, index=True),
    Column("action", String(32), nullable=False, index=True),
    Column("target", String(64), nullable=False, server_default=""),
    Column("reason", String(1024), nullable=False, server_default=""),
    Column("address", String(64), nullable=False, server_default=""),
    Column("detail", Text, nullable=False, server_default="{}"),
)

# -- message actions (docs/protocol.md, "Message actions") ---------------------------------------------------
# A message's current state (edited text, aggregated reactions) is in its body; these keep the rest.
# Every earlier text of an edited message (version 0 is the original); ``event_seq`` is the ``edit`` event that
# replaced it, so a recall can blank those events too.
message_edits = Table(
    "message_edits",
    metadata,
    Column("conv", String(48), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
    Column("text", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("event_seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("conv", "seq", "version"),
)

# One row per (message, emoji, user): reacting twice is one row.
message_reactions = Table(
    "message_reactions",
    metadata,
    Column("conv", String(48), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("emoji", String(64), nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("conv", "seq", "emoji", "user_id"),
)

message_pins = Table(
    "message_pins",
    metadata,
    Column("conv", String(48), nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("pinned_by", Integer, nullable=False),
    Column("ts", BigInteger, nullable=False),
    PrimaryKeyConstraint("conv", "seq"),
)

# "Delete for me": seqs a user hid from their own view (all their terminals); nobody else is affected.
hidden_messages = Table(
    "hidden_messages",
    metadata,
    Column("user_id", Integer, nullable=False),
    Column("conv", String(48), nullable=False),
    Column("seq", BigInteger, nullable=False),
    PrimaryKeyConstraint("user_id", "conv", "seq"),
    # A hot group's pulls read who hid what in the conversation at once (services/hidden.py).
    Index("ix_hidden_messages_conv", "conv"),
)
