"""``hubbub admin registration`` and ``hubbub admin audit`` (issue 20) through the Typer app."""

from __future__ import annotations

import json

from tests.conftest import PASSWORD
from tests.ops.test_cli import hubbub  # noqa: F401  (the CLI fixture)


def test_registration_mode_and_the_audit_export(hubbub) -> None:  # noqa: F811
    hubbub("migrate")
    assert "registration: open" in hubbub("admin", "registration")
    assert "registration: invite" in hubbub("admin", "registration", "invite")
    assert "invalid_field" in hubbub("admin", "registration", "everyone", code=1)
    assert "registration: invite" in hubbub("admin", "registration")  # the bad value changed nothing
    hubbub("admin", "create-user", "alice", "--password", PASSWORD)
    hubbub("admin", "ban", "alice")
    lines = entries(hubbub("admin", "audit"))
    assert [e["action"] for e in lines] == ["settings.change", "user.create", "user.ban"]
    assert all(e["actor"] == 0 and e["address"] == "cli" for e in lines)
    assert [e["action"] for e in entries(hubbub("admin", "audit", "--action", "user.ban"))] == ["user.ban"]


def entries(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
