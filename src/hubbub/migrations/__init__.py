"""Alembic migrations, one history for SQLite and PostgreSQL. Run by ``hubbub migrate`` and on start."""
