"""``hubbub migrate`` and ``hubbub admin ...`` against a data directory, through the Typer app."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubbub.cli import app
from hubbub.client import HubbubClient
from hubbub.migrations.runner import head
from hubbub.node import Node
from tests import conftest
from tests.conftest import PASSWORD

ENV = {"HUBBUB_ARGON2_TIME_COST": "1", "HUBBUB_ARGON2_MEMORY_KIB": "256", "HUBBUB_JWT_SECRET": "top-secret-value"}


@pytest.fixture
def hubbub(tmp_path: Path):
    runner = CliRunner()
    data = str(tmp_path / "data")

    def run(*args: str, code: int = 0) -> str:
        argv = list(args)
        if argv[0] == "admin":
            argv[1:1] = ["--data-dir", data]
        else:
            argv += ["--data-dir", data]
        result = runner.invoke(app, argv, env=ENV)
        assert result.exit_code == code, f"{argv}: {result.output}"
        return result.output

    run.data = data  # type: ignore[attr-defined]
    return run


def test_migrate_users_bans_words_notices_config(hubbub):
    assert "no database" in hubbub("admin", "users", code=1)
    out = hubbub("migrate")
    newest = head()  # migrations are numbered 0001, 0002, ...: the newest's number is how many there are
    assert f"applied {int(newest.split('_')[0])} migration(s)" in out and newest in out
    assert f"newest schema ({newest})" in hubbub("migrate")

    assert "created user 1 (alice) as an admin" in hubbub("admin", "create-user", "alice", "--password", PASSWORD, "--admin")
    assert "created user 2 (bob)\n" in hubbub("admin", "create-user", "bob", "--password", PASSWORD)
    assert "username_taken" in hubbub("admin", "create-user", "bob", "--password", PASSWORD, code=1)
    assert "invalid_field" in hubbub("admin", "create-user", "bo", "--password", PASSWORD, code=1)
    # the rules of registration (services/names.py, services/passwords.py), not a copy of them
    assert "weak_password" in hubbub("admin", "create-user", "carl", "--password", "password1", code=1)
    assert "invalid_field" in hubbub("admin", "create-user", "carl\n", "--password", PASSWORD, code=1)
    assert "reserved" in hubbub("admin", "create-user", "carl", "--password", PASSWORD, "--nickname", "HUBBUB", code=1)
    users = json.loads(hubbub("admin", "users", "--json"))
    assert [(u["user"]["username"], u["is_admin"], u["banned"]) for u in users] == [
        ("alice", True, False),
        ("bob", False, False),
    ]
    assert "bob" in hubbub("admin", "users")  # the table

    assert "banned user 2 (bob)" in hubbub("admin", "ban", "bob")
    assert json.loads(hubbub("admin", "users", "--json", "-q", "bob"))[0]["banned"] is True
    assert "unbanned user 2" in hubbub("admin", "unban", "2")
    assert "is an admin" in hubbub("admin", "grant-admin", "bob")
    assert "no longer an admin" in hubbub("admin", "revoke-admin", "bob")
    assert "not_found" in hubbub("admin", "ban", "nobody", code=1)

    assert "3 word(s)" in hubbub("admin", "words", "add", "Foo", "bar", "baz")
    assert json.loads(hubbub("admin", "words", "list", "--json")) == ["bar", "baz", "foo"]
    assert "2 word(s)" in hubbub("admin", "words", "remove", "FOO")

    assert "notice sent to 1 user(s)" in hubbub("admin", "notice", "hello bob", "--user", "bob")
    assert "notice sent to 2 user(s)" in hubbub("admin", "notice", "hello all")

    assert "no nodes reported" in hubbub("admin", "nodes")
    config = json.loads(hubbub("admin", "config", "--json"))
    assert config["jwt_secret"] == "********" and config["data_dir"] == hubbub.data  # type: ignore[attr-defined]
    assert "top-secret-value" not in hubbub("admin", "config")


def test_group_commands_and_a_running_node_sees_them(hubbub, tmp_path):
    """Freeze and dismiss from the CLI; a node over the same database refuses sends accordingly."""
    hubbub("migrate")

    async def prelude() -> tuple[int, str]:
        node = Node(conftest.test_config(tmp_path))
        await node.start()
        a, b = HubbubClient(conftest.base_url(node)), HubbubClient(conftest.base_url(node))
        try:
            await a.register("cli_owner", PASSWORD)
            await b.register("cli_member", PASSWORD)
            await conftest.friends(a, b)
            group = await a.api("POST", "/api/v1/groups", {"name": "cli group", "members": [b.user_id]})
            return group["id"], group["conv"]
        finally:
            await a.close()
            await b.close()
            await node.stop()

    group_id, conv = asyncio.run(prelude())
    assert f"group {group_id} (cli group) is frozen" in hubbub("admin", "freeze-group", str(group_id))

    async def send_refused() -> str:
        node = Node(conftest.test_config(tmp_path))
        await node.start()
        a = HubbubClient(conftest.base_url(node))
        try:
            await a.login("cli_owner", PASSWORD)
            try:
                await a.api("POST", "/api/v1/messages", {"cmid": "c1", "conv": conv, "body": {"text": "x"}})
            except Exception as exc:  # the ApiError
                return str(getattr(exc, "code", exc))
            return "stored"
        finally:
            await a.close()
            await node.stop()

    assert asyncio.run(send_refused()) == "group_frozen"
    assert "is writable" in hubbub("admin", "freeze-group", str(group_id), "--unfreeze")
    assert asyncio.run(send_refused()) == "stored"
    assert "dismissed" in hubbub("admin", "dismiss-group", str(group_id))
    assert "group_dismissed" in hubbub("admin", "dismiss-group", str(group_id), code=1)


def test_admin_commands_need_a_current_schema(hubbub, tmp_path):
    data = Path(hubbub.data)  # type: ignore[attr-defined]
    data.mkdir(parents=True)
    import sqlite3

    sqlite3.connect(data / "hubbub.db").close()  # an empty database: nothing migrated
    assert "run `hubbub migrate` first" in hubbub("admin", "users", code=1)


def test_version_and_help_for_a_first_run():
    """Issue 12, "First run": ``--version`` works; ``serve --help`` shows defaults and environment names;
    ``create-user --help`` does not call the optional --password required."""
    import hubbub

    runner = CliRunner()
    assert runner.invoke(app, ["--version"]).output.strip() == hubbub.__version__
    assert runner.invoke(app, ["version"]).output.strip() == hubbub.__version__
    serve_help = runner.invoke(app, ["serve", "--help"], terminal_width=200).output
    for shown in ("HUBBUB_PORT", "8080", "HUBBUB_HOST", "127.0.0.1", "HUBBUB_DATA_DIR", "HUBBUB_REDIS"):
        assert shown in serve_help, shown
    assert "docs/operations.md" in serve_help
    create_help = runner.invoke(app, ["admin", "create-user", "--help"], terminal_width=200).output
    password_line = next(line for line in create_help.splitlines() if "--password" in line)
    assert "required" not in password_line and "*" not in password_line


def test_create_user_asks_for_the_password_when_not_given(hubbub):
    hubbub("migrate")
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["admin", "--data-dir", hubbub.data, "create-user", "asked"],
        input=f"{PASSWORD}\n{PASSWORD}\n",
        env=ENV,
    )
    assert result.exit_code == 0, result.output
    assert "created user" in result.output
