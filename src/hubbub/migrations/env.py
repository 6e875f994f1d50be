"""Alembic environment: always called with a live connection from ``hubbub.migrations.runner``."""

from alembic import context

from hubbub.engines.storage.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `hubbub migrate`, which supplies the database connection")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
