"""Durable state: accounts, sessions, friendships, conversations and messages.

``base.Storage`` is the interface; ``sql.SqlStorage`` implements it with SQLAlchemy Core for SQLite (the
embedded default) and PostgreSQL (clusters). Schema changes go through Alembic (``hubbub.migrations``).
"""
