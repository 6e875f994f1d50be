"""Canary accounts: a flag on users, so the delivery canary's synthetic accounts are hidden from user search
and their messages can be purged (hubbub/proof/canary.py, ``hubbub admin canary-purge``).

Revision ID: 0007_proof
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_proof"
down_revision = "0006"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("canary", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("canary")
