"""Operations: admin users, frozen groups, the sensitive-word list and small server settings.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_admin", sa.Boolean, nullable=False, server_default=sa.false()))
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("frozen", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "sensitive_words",
        sa.Column("word", sa.String(64), primary_key=True),
        sa.Column("added_at", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("settings")
    op.drop_table("sensitive_words")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("frozen")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_admin")
