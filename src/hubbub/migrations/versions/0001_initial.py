"""Accounts, sessions, friends, conversations and messages.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(32), nullable=False, unique=True),
        sa.Column("username_lower", sa.String(32), nullable=False, unique=True),
        sa.Column("nickname", sa.String(64), nullable=False),
        sa.Column("signature", sa.String(256), nullable=False, server_default=""),
        sa.Column("avatar", sa.String(128), nullable=True),
        sa.Column("password_hash", sa.String(256), nullable=False),
        sa.Column("banned", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "sessions",
        sa.Column("sid", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False, index=True),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("sid", sa.String(32), nullable=False, index=True),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("spent", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "friendships",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("friend_id", sa.Integer, nullable=False),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "friend_id"),
    )
    op.create_table(
        "friend_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("from_id", sa.Integer, nullable=False),
        sa.Column("to_id", sa.Integer, nullable=False, index=True),
        sa.Column("note", sa.String(256), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_friend_requests_from", "friend_requests", ["from_id", "status"])
    op.create_table(
        "conversations",
        sa.Column("conv", sa.String(48), primary_key=True),
        sa.Column("max_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "conv_members",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("read_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("min_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("user_id", "conv"),
    )
    op.create_index("ix_conv_members_conv", "conv_members", ["conv"])
    op.create_table(
        "messages",
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("id", sa.BigInteger, nullable=False),
        sa.Column("sender", sa.Integer, nullable=False),
        sa.Column("cmid", sa.String(96), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("recalled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.PrimaryKeyConstraint("conv", "seq"),
        sa.UniqueConstraint("sender", "cmid", name="uq_messages_sender_cmid"),
    )


def downgrade() -> None:
    for table in (
        "messages",
        "conv_members",
        "conversations",
        "friend_requests",
        "friendships",
        "refresh_tokens",
        "sessions",
        "users",
    ):
        op.drop_table(table)
