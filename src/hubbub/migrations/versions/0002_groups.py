"""Groups, group members, and mention tracking per conversation member.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("conv_members") as batch:
        batch.add_column(sa.Column("mention_seq", sa.BigInteger, nullable=False, server_default="0"))
    op.create_table(
        "groups",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("avatar", sa.String(128), nullable=True),
        sa.Column("notice", sa.String(1024), nullable=False, server_default=""),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("invite_policy", sa.String(16), nullable=False, server_default="members"),
        sa.Column("muted_all", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("dismissed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("member_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("nickname", sa.String(64), nullable=False, server_default=""),
        sa.Column("dnd", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("muted_until", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("joined_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("group_id", "user_id"),
    )
    op.create_index("ix_group_members_user", "group_members", ["user_id"])


def downgrade() -> None:
    op.drop_table("group_members")
    op.drop_table("groups")
    with op.batch_alter_table("conv_members") as batch:
        batch.drop_column("mention_seq")
