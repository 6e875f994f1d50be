"""Structured logs: one JSON line per HTTP request and per connection, with ids, never secrets or bodies."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest

from hubbub import logs
from hubbub.client import HubbubClient
from tests.conftest import PASSWORD, base_url, friends


@pytest.fixture
def json_logs():
    """Start JSON logging into a buffer (call it in the test itself: pytest resets log levels per phase)."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    buffer = io.StringIO()

    def start() -> Callable[[], list[dict]]:
        logs.setup("info", "node-x", json=True, stream=buffer)
        return lambda: [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]

    yield start
    root.handlers[:], level = saved
    root.setLevel(level)


async def test_request_and_connection_lines(node, json_logs):
    json_logs = json_logs()
    alice, bob = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await alice.register("log_alice", PASSWORD)
        await bob.register("log_bob", PASSWORD)
        await friends(alice, bob)
        await alice.connect()
        await alice.send_text("a very private sentence", to=bob.user_id)
        await alice.api("GET", f"/api/v1/users/{bob.user_id}")
        await alice.disconnect()
        await alice.wait_until(lambda: any(line["event"] == "ws_closed" for line in json_logs()), timeout=3)
    finally:
        await alice.close()
        await bob.close()
    lines = json_logs()
    raw = json.dumps(lines)
    for secret in (PASSWORD, alice.access_token, alice.refresh_token, "a very private sentence"):
        assert secret not in raw
    requests = [line for line in lines if line["event"] == "http_request"]
    profile = next(r for r in requests if r["route"] == "/api/v1/users/{user_id}")
    assert profile["user"] == alice.user_id and profile["status"] == 200 and profile["method"] == "GET"
    assert profile["node"] == "node-x" and profile["level"] == "info" and "timestamp" in profile
    assert isinstance(profile["ms"], float)
    register = next(r for r in requests if r["path"] == "/api/v1/auth/register")
    assert register["status"] == 201 and register["user"] is None
    opened = next(line for line in lines if line["event"] == "ws_opened")
    closed = next(line for line in lines if line["event"] == "ws_closed" and line["user"] == alice.user_id)
    assert opened["user"] == alice.user_id and opened["terminal"] == "web" and opened["conn"] == closed["conn"]
    assert closed["code"] == 1000 and closed["seconds"] >= 0


async def test_errors_carry_their_code(node, json_logs):
    json_logs = json_logs()
    client = HubbubClient(base_url(node))
    try:
        await client.register("log_err", PASSWORD)
        try:
            await client.api("GET", "/api/v1/users/424242")
        except Exception:
            pass
    finally:
        await client.close()
    miss = next(line for line in json_logs() if line.get("path") == "/api/v1/users/424242")
    assert (miss["status"], miss["code"]) == (404, "not_found")


def test_bad_level_is_refused():
    with pytest.raises(SystemExit):
        logs.setup("loud")
