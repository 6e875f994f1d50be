"""Message actions (issue 14): edit history, reactions, pins, messages hidden per user ("delete for me"), and
who may pin in a group.

The current state of a message (edited text, aggregated reactions) lives in its ``body``; these tables keep
what the body cannot: every earlier version, every reactor, the pins of a conversation, each user's hidden
seqs. Edits, reactions and pins are also events in the conversation's seq (``messages`` rows).

Revision ID: 0011_actions
Revises: 0010_admin
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_actions"
down_revision = "0010_admin"


def upgrade() -> None:
    op.create_table(
        "message_edits",
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("event_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("conv", "seq", "version"),
    )
    op.create_table(
        "message_reactions",
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("emoji", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("conv", "seq", "emoji", "user_id"),
    )
    op.create_table(
        "message_pins",
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("pinned_by", sa.Integer, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("conv", "seq"),
    )
    op.create_table(
        "hidden_messages",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "conv", "seq"),
    )
    op.create_index("ix_hidden_messages_conv", "hidden_messages", ["conv"])
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("pin_policy", sa.String(16), nullable=False, server_default="admins"))


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("pin_policy")
    for table in ("hidden_messages", "message_pins", "message_reactions", "message_edits"):
        op.drop_table(table)
