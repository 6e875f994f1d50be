"""Uploads: quota reservations taken before an upload streams, and who set a group's avatar.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "upload_reservations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_upload_reservations_owner", "upload_reservations", ["owner_id"])
    # Existing group avatars keep no setter: they stop being public until set again (the old rule published
    # any member's upload, whoever set it).
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("avatar_by", sa.Integer, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("avatar_by")
    op.drop_index("ix_upload_reservations_owner", "upload_reservations")
    op.drop_table("upload_reservations")
