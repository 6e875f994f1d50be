"""Access control: timed bans, registration invites, group join links and requests, public groups, reports
and the admin audit log (issue 20; docs/operations.md, "Admin console").

Revision ID: 0010_admin
Revises: 0009_proof
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_admin"
down_revision = "0009_proof"


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("banned_until", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("ban_reason", sa.String(256), nullable=False, server_default=""))
    with op.batch_alter_table("groups") as batch:
        batch.add_column(sa.Column("public", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("join_approval", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "invites",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("created_by", sa.Integer, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("note", sa.String(256), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_invites_created_by", "invites", ["created_by"])
    op.create_table(
        "group_links",
        sa.Column("code", sa.String(32), primary_key=True),
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("created_by", sa.Integer, nullable=False),
        sa.Column("max_uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("uses", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expires_at", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_group_links_group_id", "group_links", ["group_id"])
    op.create_table(
        "join_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("link", sa.String(32), nullable=False, server_default=""),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("decided_by", sa.Integer, nullable=True),
        sa.Column("decided_at", sa.BigInteger, nullable=True),
    )
    op.create_index("ix_join_requests_group", "join_requests", ["group_id", "status"])
    op.create_index("ix_join_requests_user", "join_requests", ["user_id", "group_id"])
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reporter", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("reason", sa.String(1024), nullable=False),
        sa.Column("snapshot", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False, server_default=""),
        sa.Column("handled_by", sa.Integer, nullable=True),
        sa.Column("handled_at", sa.BigInteger, nullable=True),
        sa.Column("note", sa.String(1024), nullable=False, server_default=""),
        sa.Column("created_at", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_reports_reporter", "reports", ["reporter"])
    op.create_index("ix_reports_status", "reports", ["status", "id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.Integer, nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(64), nullable=False, server_default=""),
        sa.Column("reason", sa.String(1024), nullable=False, server_default=""),
        sa.Column("address", sa.String(64), nullable=False, server_default=""),
        sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    )
    for column in ("ts", "actor", "action"):
        op.create_index(f"ix_audit_log_{column}", "audit_log", [column])


def downgrade() -> None:
    for column in ("ts", "actor", "action"):
        op.drop_index(f"ix_audit_log_{column}", "audit_log")
    op.drop_table("audit_log")
    op.drop_index("ix_reports_status", "reports")
    op.drop_index("ix_reports_reporter", "reports")
    op.drop_table("reports")
    op.drop_index("ix_join_requests_user", "join_requests")
    op.drop_index("ix_join_requests_group", "join_requests")
    op.drop_table("join_requests")
    op.drop_index("ix_group_links_group_id", "group_links")
    op.drop_table("group_links")
    op.drop_index("ix_invites_created_by", "invites")
    op.drop_table("invites")
    with op.batch_alter_table("groups") as batch:
        batch.drop_column("join_approval")
        batch.drop_column("public")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("ban_reason")
        batch.drop_column("banned_until")
