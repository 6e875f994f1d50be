"""Web Push: devices (push subscriptions per session), each user's push settings, and the outgoing queue
(issue 17; docs/architecture.md, "Web Push").

Revision ID: 0013_webpush
Revises: 0010_admin
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_webpush"
down_revision = "0012_social"


def upgrade() -> None:
    op.create_table(
        "push_devices",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("sid", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("endpoint", sa.String(1024), nullable=False, unique=True),
        sa.Column("p256dh", sa.String(128), nullable=False, server_default=""),
        sa.Column("auth", sa.String(64), nullable=False, server_default=""),
        sa.Column("label", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("last_ok_at", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_push_devices_user_id", "push_devices", ["user_id"])
    op.create_index("ix_push_devices_sid", "push_devices", ["sid"])
    op.create_table(
        "push_prefs",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("preview", sa.String(8), nullable=False, server_default="full"),
        sa.Column("mentions_through_mute", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("hot_groups", sa.String(8), nullable=False, server_default="mentions"),
    )
    op.create_table(
        "push_outbox",
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False, server_default=""),
        sa.Column("seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("title", sa.String(160), nullable=False, server_default=""),
        sa.Column("text", sa.String(256), nullable=False, server_default=""),
        sa.Column("mention", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("sent_seq", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("shown", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_sent_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("due_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease", sa.String(96), nullable=False, server_default=""),
        sa.Column("lease_until", sa.BigInteger, nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("device_id", "conv"),
    )
    op.create_index("ix_push_outbox_due", "push_outbox", ["kind", "due_at"])
    op.create_index("ix_push_outbox_user", "push_outbox", ["user_id", "conv"])


def downgrade() -> None:
    op.drop_table("push_outbox")
    op.drop_table("push_prefs")
    op.drop_table("push_devices")
