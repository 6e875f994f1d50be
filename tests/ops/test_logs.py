"""Structured logs: one JSON line per HTTP request and per connection, with ids, never secrets or bodies."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable

import pytest

from hubbub import logs
from hubbub.client import HubbubClient
from hubbub.config import ConfigError
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
    with pytest.raises(ConfigError, match="log_level"):
        logs.setup("loud")


async def test_downloads_name_who_downloaded(node, json_logs):
    """Downloads authenticate themselves (the token may come as ``?access_token=``), so the route wrapper never
    named their user for the access log (issue 12.23)."""
    json_logs = json_logs()
    client = HubbubClient(base_url(node))
    try:
        await client.register("log_dl", PASSWORD)
        headers = {"Authorization": f"Bearer {client.access_token}"}
        params = {"kind": "file", "name": "a.txt"}
        async with client.http.post(
            client.base_url + "/api/v1/uploads", data=b"hello\n", params=params, headers=headers
        ) as resp:
            assert resp.status in (200, 201)
            upload_id = (await resp.json())["upload"]
        for how in ({"headers": headers}, {"params": {"access_token": client.access_token}}):
            async with client.http.get(f"{client.base_url}/api/v1/uploads/{upload_id}", **how) as resp:
                assert resp.status == 200
    finally:
        await client.close()
    downloads = [
        line for line in json_logs() if line.get("route") == "/api/v1/uploads/{upload_id}" and line["method"] == "GET"
    ]
    assert [(d["status"], d["user"]) for d in downloads] == [(200, client.user_id)] * 2
    assert client.access_token not in json.dumps(downloads)  # the query string is never logged
