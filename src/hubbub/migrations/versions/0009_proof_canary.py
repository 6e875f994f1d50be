"""Canary accounts: a flag on users, so the delivery canary's synthetic accounts are hidden from user search
and their messages can be purged (hubbub/proof/canary.py, ``hubbub admin canary-purge``).

Revision ID: 0009_proof
Revises: 0008_search
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_proof"
down_revision = "0008_search"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("canary", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("canary")
