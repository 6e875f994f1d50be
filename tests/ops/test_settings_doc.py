"""Every ``HUBBUB_*`` setting is in the table of docs/operations.md ("Settings"), as config.py says it."""

from __future__ import annotations

import re

import msgspec

from hubbub import settings_doc
from hubbub.config import Config


def test_every_setting_is_in_the_operations_table() -> None:
    documented = set(re.findall(r"^\| `HUBBUB_([A-Z0-9_]+)` \|", settings_doc.documented(), re.MULTILINE))
    fields = {field.name.upper() for field in msgspec.structs.fields(Config)}
    assert not fields - documented, f"missing from docs/operations.md: {sorted(fields - documented)}"
    assert not documented - fields, f"documented but not settings: {sorted(documented - fields)}"


def test_the_table_is_current() -> None:
    """Defaults, types and meanings as config.py has them: run ``python -m hubbub.settings_doc --write``."""
    assert settings_doc.documented() == settings_doc.table()


def test_every_setting_has_a_meaning() -> None:
    about = settings_doc.descriptions()
    assert not [f.name for f in msgspec.structs.fields(Config) if not about.get(f.name)]
