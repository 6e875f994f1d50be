"""Config errors are one ``ConfigError`` raised by validation (config.py), and the CLI turns it into one clear
line and exit status 2, never a traceback or a ``SystemExit`` from deep inside a component (issue 13.8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hubbub import config as config_mod
from hubbub.cli import app
from hubbub.config import ConfigError
from hubbub.root import Root
from tests import conftest


@pytest.mark.timeout(30)  # a config that passed by mistake would serve forever
@pytest.mark.parametrize(
    ("env", "argv", "names"),
    [
        ({"HUBBUB_WORD_FILTER": "shout"}, [], "word_filter"),
        ({"HUBBUB_LOG_LEVEL": "loud"}, [], "log_level"),
        ({"HUBBUB_HEARTBEAT_S": "often"}, [], "HUBBUB_HEARTBEAT_S"),
        ({"HUBBUB_METRICS_LISTEN": "nowhere"}, [], "metrics_listen"),
        ({"HUBBUB_NODE_NUMBER": "5000"}, [], "node_number"),
        ({"HUBBUB_MAX_SESSIONS_PER_USER": "0"}, [], "max_sessions_per_user"),
        ({}, ["--role", "everything"], "role"),
        # a cluster node without the shared token secret would reject the other nodes' tokens
        ({"HUBBUB_REDIS": "redis://127.0.0.1:1"}, [], "HUBBUB_JWT_SECRET"),
    ],
)
def test_serve_refuses_a_config_that_cannot_work(
    tmp_path: Path, env: dict[str, str], argv: list[str], names: str
) -> None:
    result = CliRunner().invoke(app, ["serve", "--data-dir", str(tmp_path), "--port", "0", *argv], env=env)
    assert result.exit_code == 2, result.output
    assert names in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_admin_and_migrate_refuse_it_too(tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"HUBBUB_LOG_LEVEL": "loud"}
    for argv in (["migrate", "--data-dir", str(tmp_path)], ["admin", "users"], ["admin", "config"]):
        result = runner.invoke(app, argv, env=env)
        assert result.exit_code == 2 and "log_level" in result.output, (argv, result.output)


def test_a_tool_needs_no_cluster_secret(tmp_path: Path) -> None:
    """``hubbub admin`` issues no tokens: Redis without a secret is fine for it, not for a node."""
    cfg = conftest.test_config(tmp_path, redis="redis://127.0.0.1:1")
    Root(cfg, tool=True)
    with pytest.raises(ConfigError, match="HUBBUB_JWT_SECRET"):
        Root(cfg)


def test_load_validates() -> None:
    with pytest.raises(ConfigError, match="word_filter"):
        config_mod.load({"word_filter": "loud"}, environ={})
    assert config_mod.load({}, environ={}).word_filter == "replace"
