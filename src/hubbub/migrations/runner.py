"""Run Alembic without an alembic.ini: the script location is this package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(connection: Connection, revision: str = "head") -> None:
    command.upgrade(alembic_config(connection), revision)


def head() -> str:
    """The newest revision this version of Hubbub knows."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert found is not None
    return found


def current(connection: Connection) -> str | None:
    """The database's revision; None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def pending(connection: Connection) -> list[tuple[str, str]]:
    """(revision, description) of the migrations not yet applied, oldest first."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    revisions = script.iterate_revisions("heads", current(connection) or "base")
    return [
        (r.revision, (r.doc or "").strip().splitlines()[0] if r.doc else "")
        for r in reversed(list(revisions))
    ]
