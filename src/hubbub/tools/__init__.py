"""Operator tools that work on a whole install: backup, restore, and the move from SQLite to PostgreSQL
(docs/operations.md, "Backup and restore", "From one machine to a cluster"). The CLI commands in
``admin_cli.py`` only parse options and print; the work is here, so tests and benchmarks call it directly."""


class ToolError(Exception):
    """A refusal with a message for the operator; nothing was changed."""
