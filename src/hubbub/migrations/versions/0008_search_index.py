"""Message search: the index kept behind the messages table (docs/architecture.md, "Search").

SQLite: an FTS5 table with the trigram tokenizer, keyed by the messages' rowid (no copy of the metadata: a
search joins the messages row by rowid). PostgreSQL: ``pg_trgm`` (contrib), a ``rid`` column on messages
from a sequence (the order the indexer tails), and ``message_search`` with a trigram GIN index. Existing
messages are indexed by the nodes' background indexer from watermark 0, with progress in the log and in
``hubbub_search_index_lag`` (engines/storage/sql_search.py), not here: a migration over millions of
messages would hold the upgrade for minutes.

Revision ID: 0008_search
Revises: 0007_lifecycle
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_search"
down_revision = "0007_lifecycle"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("CREATE VIRTUAL TABLE message_fts USING fts5(text, tokenize='trigram')")
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("ALTER TABLE messages ADD COLUMN rid BIGSERIAL")
    op.execute("CREATE UNIQUE INDEX ix_messages_rid ON messages (rid)")
    op.create_table(
        "message_search",
        sa.Column("rid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("conv", sa.String(48), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("sender", sa.Integer, nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.execute("CREATE INDEX ix_message_search_text ON message_search USING gin (text gin_trgm_ops)")
    op.create_index("ix_message_search_conv", "message_search", ["conv", "rid"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE message_fts")
        return
    op.drop_table("message_search")
    op.execute("DROP INDEX ix_messages_rid")
    op.execute("ALTER TABLE messages DROP COLUMN rid")
