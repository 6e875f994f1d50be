"""Integrations: bot accounts and their tokens, incoming and outgoing webhooks with a delivery log, and
OpenID Connect sign-in (issue 21; docs/integrations.md).

Revision ID: 0015_integrations
Revises: 0010_admin
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_integrations"
down_revision = "0014_partitions"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("is_bot", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "bots",
        sa.Column("user_id", sa.Integer, primary_key=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_bots_owner_id", "bots", ["owner_id"])
    op.create_table(
        "bot_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bot_id", sa.Integer, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("scopes", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_bot_tokens_bot_id", "bot_tokens", ["bot_id"])
    op.create_table(
        "incoming_webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("conv", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.Integer, nullable=False),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("name", sa.String(64), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_index("ix_incoming_webhooks_owner_id", "incoming_webhooks", ["owner_id"])
    op.create_table(
        "outgoing_webhooks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("owner_id", sa.Integer, nullable=False),
        sa.Column("conv", sa.String(64), nullable=False),
        sa.Column("url", sa.String(2048), nullable=False),
        sa.Column("secret", sa.String(64), nullable=False),
        sa.Column("events", sa.String(64), nullable=False),
        sa.Column("bot_id", sa.Integer, nullable=True),
        sa.Column("cursor_seq", sa.BigInteger, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("failures", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("lease_until", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_outgoing_webhooks_owner_id", "outgoing_webhooks", ["owner_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("webhook_id", sa.Integer, nullable=False),
        sa.Column("event_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("response", sa.String(512), nullable=False, server_default=""),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("node", sa.String(128), nullable=False, server_default=""),
    )
    op.create_index("ix_webhook_deliveries_hook", "webhook_deliveries", ["webhook_id", "id"])
    op.create_table(
        "oidc_flows",
        sa.Column("state", sa.String(64), primary_key=True),
        sa.Column("verifier", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(1024), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("ticket_hash", sa.String(64), nullable=True, unique=True),
        sa.Column("user_id", sa.Integer, nullable=True),
        sa.Column("ticket_used", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "oidc_links",
        sa.Column("issuer", sa.String(512), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "subject"),
    )
    op.create_index("ix_oidc_links_user_id", "oidc_links", ["user_id"])


def downgrade() -> None:
    for table in ("oidc_links", "oidc_flows", "webhook_deliveries", "outgoing_webhooks"):
        op.drop_table(table)
    for table in ("incoming_webhooks", "bot_tokens", "bots"):
        op.drop_table(table)
    with op.batch_alter_table("users") as batch:
        batch.drop_column("is_bot")
