"""PostgreSQL: ``messages`` partitioned by conversation hash (issue 19; docs/architecture.md, "Partitioned
messages"). SQLite is unchanged.

``messages`` becomes ``PARTITION BY HASH (conv)`` with ``PARTITIONS`` partitions, so one conversation's rows
(every read: pull, history, recall, purge, all by ``conv``) stay in one partition and each partition's
indexes stay a fraction of the table's. PostgreSQL allows a unique index on a partitioned table only if it
holds the partition key, so the two global ones move:

- idempotency, unique ``(sender, cmid)`` across conversations: ``message_keys`` (sender, cmid) -> (conv,
  seq), kept by row triggers on ``messages`` (an insert adds the key, and a duplicate key fails the insert
  with the same unique violation as before; a delete, by purge or lifecycle, drops it). The storage looks
  duplicates up there (engines/storage/sql.py);
- ``rid`` (the search indexer's order): still from its sequence, so unique, with a plain index.

Existing rows are copied in this migration (one ``INSERT ... SELECT``; the old table is dropped after).

Revision ID: 0014_partitions
Revises: 0010_admin
"""

from alembic import op

revision = "0014_partitions"
down_revision = "0013_webpush"

#: Hash partitions of ``messages``. A power of two, so a later migration can split each in two.
PARTITIONS = 16

_COLUMNS = "conv, seq, id, sender, cmid, type, body, ts, recalled, rid"

_TRIGGERS = (
    """
CREATE FUNCTION messages_keep_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO message_keys (sender, cmid, conv, seq) VALUES (NEW.sender, NEW.cmid, NEW.conv, NEW.seq);
    RETURN NEW;
  END IF;
  DELETE FROM message_keys WHERE sender = OLD.sender AND cmid = OLD.cmid;
  RETURN OLD;
END $$
""",
    "CREATE TRIGGER messages_keys_insert AFTER INSERT ON messages "
    "FOR EACH ROW EXECUTE FUNCTION messages_keep_keys()",
    "CREATE TRIGGER messages_keys_delete AFTER DELETE ON messages "
    "FOR EACH ROW EXECUTE FUNCTION messages_keep_keys()",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE messages RENAME TO messages_unpartitioned")
    op.execute(
        "ALTER TABLE messages_unpartitioned RENAME CONSTRAINT messages_pkey TO messages_unpartitioned_pkey"
    )
    op.execute("ALTER INDEX ix_messages_rid RENAME TO ix_messages_unpartitioned_rid")
    op.execute(
        """
        CREATE TABLE messages (
          conv varchar(48) NOT NULL,
          seq bigint NOT NULL,
          id bigint NOT NULL,
          sender integer NOT NULL,
          cmid varchar(96) NOT NULL,
          type varchar(16) NOT NULL,
          body text NOT NULL,
          ts bigint NOT NULL,
          recalled boolean NOT NULL DEFAULT false,
          rid bigint NOT NULL DEFAULT nextval('messages_rid_seq'),
          PRIMARY KEY (conv, seq)
        ) PARTITION BY HASH (conv)
        """
    )
    for n in range(PARTITIONS):
        op.execute(
            f"CREATE TABLE messages_p{n:02d} PARTITION OF messages "
            f"FOR VALUES WITH (MODULUS {PARTITIONS}, REMAINDER {n})"
        )
    op.execute("CREATE INDEX ix_messages_sender_cmid ON messages (sender, cmid)")
    op.execute("CREATE INDEX ix_messages_rid ON messages (rid)")
    op.execute(
        """
        CREATE TABLE message_keys (
          sender integer NOT NULL,
          cmid varchar(96) NOT NULL,
          conv varchar(48) NOT NULL,
          seq bigint NOT NULL,
          PRIMARY KEY (sender, cmid)
        )
        """
    )
    for statement in _TRIGGERS:
        op.execute(statement)
    op.execute(f"INSERT INTO messages ({_COLUMNS}) SELECT {_COLUMNS} FROM messages_unpartitioned")
    op.execute("ALTER SEQUENCE messages_rid_seq OWNED BY messages.rid")
    op.execute("DROP TABLE messages_unpartitioned")
    op.execute("ANALYZE messages")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE messages RENAME TO messages_partitioned")
    op.execute(
        "ALTER TABLE messages_partitioned RENAME CONSTRAINT messages_pkey TO messages_partitioned_pkey"
    )
    op.execute("ALTER INDEX ix_messages_rid RENAME TO ix_messages_partitioned_rid")
    op.execute(
        "CREATE TABLE messages (LIKE messages_partitioned INCLUDING DEFAULTS, PRIMARY KEY (conv, seq), "
        "CONSTRAINT uq_messages_sender_cmid UNIQUE (sender, cmid))"
    )
    op.execute(f"INSERT INTO messages ({_COLUMNS}) SELECT {_COLUMNS} FROM messages_partitioned")
    op.execute("CREATE UNIQUE INDEX ix_messages_rid ON messages (rid)")
    op.execute("ALTER SEQUENCE messages_rid_seq OWNED BY messages.rid")
    op.execute("DROP TABLE messages_partitioned")
    op.execute("DROP TABLE message_keys")
    op.execute("DROP FUNCTION messages_keep_keys()")
