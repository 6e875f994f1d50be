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
