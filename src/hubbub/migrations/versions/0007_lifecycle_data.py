"""Data lifecycle: retention policies and purged floors, export jobs, closed accounts.

Revision ID: 0007_lifecycle
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_lifecycle"
down_revision = "0006"


def upgrade() -> None:
    # Every message at or below a conversation's purged seq was removed by retention (docs/protocol.md).
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("purged_seq", sa.BigInteger, nullable=False, server_default="0"))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("deleted_at", sa.BigInteger, nullable=True))
    op.create_table(
        "retention_policies",
        sa.Column("conv", sa.String(48), primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("set_by", sa.Integer, nullable=False),
        sa.Column("set_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "exports",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("user_id", sa.Integer, nullable=False, index=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject", sa.String(48), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("active_key", sa.String(80), nullable=True, unique=True),
        sa.Column("size", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("finished_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("expires_at", sa.BigInteger, nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_table("exports")
    op.drop_table("retention_policies")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("deleted_at")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("purged_seq")
