"""Uploads: content-addressed blobs, upload records, message references, avatar lookups.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("touched_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_blobs_touched_at", "blobs", ["touched_at"])
    op.create_table(
        "uploads",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("blob", sa.String(80), nullable=False),
        sa.Column("thumb", sa.String(80), nullable=True),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mime", sa.String(100), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("meta", sa.Text, nullable=False, server_default="{}"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_uploads_owner", "uploads", ["owner_id"])
    op.create_index("ix_uploads_blob", "uploads", ["blob"])
    op.create_index("ix_uploads_thumb", "uploads", ["thumb"])
    op.create_index("ix_uploads_created_at", "uploads", ["created_at"])
    op.create_table(
        "upload_refs",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("sender", sa.Integer, nullable=False),
        sa.Column("confirmed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("upload_id", "sender"),
    )
    op.create_index("ix_users_avatar", "users", ["avatar"])
    op.create_index("ix_groups_avatar", "groups", ["avatar"])


def downgrade() -> None:
    op.drop_index("ix_groups_avatar", "groups")
    op.drop_index("ix_users_avatar", "users")
    op.drop_table("upload_refs")
    op.drop_table("uploads")
    op.drop_table("blobs")
