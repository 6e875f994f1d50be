"""Social (issue 15): blocks, contact remarks, per-chat preferences, last seen and its privacy, and when each
session was last active (the sessions list).

Revision ID: 0012_social
Revises: 0010_admin
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_social"
down_revision = "0011_actions"


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("last_active", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "blocks",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("blocked_id", sa.Integer, nullable=False),
        sa.Column("since", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "blocked_id"),
    )
    op.create_index("ix_blocks_blocked", "blocks", ["blocked_id"])
    op.create_table(
        "contact_remarks",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("target_id", sa.Integer, nullable=False),
        sa.Column("remark", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "target_id"),
    )
    op.create_table(
        "chat_prefs",
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("pinned", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("muted", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("archived", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("marked_unread", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", "conv"),
    )
    op.create_index("ix_chat_prefs_conv", "chat_prefs", ["conv"])
    op.create_table(
        "user_social",
        sa.Column("user_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("last_seen_privacy", sa.String(16), nullable=False, server_default="friends"),
        sa.Column("last_seen", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("user_social")
    op.drop_index("ix_chat_prefs_conv", "chat_prefs")
    op.drop_table("chat_prefs")
    op.drop_table("contact_remarks")
    op.drop_index("ix_blocks_blocked", "blocks")
    op.drop_table("blocks")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("last_active")
