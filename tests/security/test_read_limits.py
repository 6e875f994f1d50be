"""Reads are rate limited per user (issue 12.23): REST GETs and the WebSocket's sync/pull/history/receipts
take from one bucket (per node); over it, HTTP 429 / an error frame ``rate_limited`` with ``retry_after``."""

from __future__ import annotations

import aiohttp
import pytest

from tests import servers
from tests.conftest import PASSWORD, base_url


async def _register(http: aiohttp.ClientSession, url: str, name: str) -> str:
    async with http.post(url + "/api/v1/auth/register", json={"username": name, "password": PASSWORD}) as resp:
        assert resp.status == 201
        return str((await resp.json())["access_token"])


async def _get_me(http: aiohttp.ClientSession, url: str, token: str) -> tuple[int, dict]:
    async with http.get(url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"}) as resp:
        return resp.status, await resp.json()


async def _ws_request(ws: aiohttp.ClientWebSocketResponse, frame: dict) -> dict:
    await ws.send_json(frame)
    while True:
        reply = await ws.receive_json(timeout=5)
        if reply.get("rid") == frame["rid"]:
            return dict(reply)


async def test_reads_share_one_bucket_per_user_over_rest_and_websocket(make_node) -> None:
    node = await make_node(read_burst=4, read_rate=0.01, ip_limit_exempt="127.0.0.0/8")
    url = base_url(node)
    async with aiohttp.ClientSession() as http:
        reader, other = await _register(http, url, "reader"), await _register(http, url, "bystander")
        answers = [await _get_me(http, url, reader) for _ in range(4)]
        assert [status for status, _ in answers] == [200] * 4
        status, body = await _get_me(http, url, reader)
        assert status == 429 and body["error"]["code"] == "rate_limited" and body["error"]["retry_after"] > 0

        ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
        await ws.send_json({"type": "auth", "token": reader, "terminal": "web"})
        assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
        for frame in ({"type": "sync", "rid": "s"}, {"type": "pull", "conv": "g:1", "after_seq": 0, "rid": "p"}):
            reply = await _ws_request(ws, frame)
            assert reply["type"] == "error" and reply["code"] == "rate_limited" and reply["retry_after"] > 0
        await ws.close()

        # Someone else's bucket is their own.
        assert (await _get_me(http, url, other))[0] == 200


@pytest.mark.parametrize("engines", ["embedded", "redis"])
async def test_websocket_reads_alone_are_limited_too(make_node, engines: str, request: pytest.FixtureRequest) -> None:
    options: dict = {"read_burst": 3, "read_rate": 0.01}
    if engines == "redis":  # per node, in memory, whatever the engine of the cluster-wide limits
        redis = servers.RedisServer().start()
        request.addfinalizer(redis.stop)
        options |= {"redis": redis.url, "jwt_secret": "read-limits-" + "x" * 32}
    node = await make_node(**options)
    url = base_url(node)
    async with aiohttp.ClientSession() as http:
        token = await _register(http, url, "syncer")
        ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
        await ws.send_json({"type": "auth", "token": token, "terminal": "web"})
        assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
        replies = [await _ws_request(ws, {"type": "sync", "rid": f"r{i}"}) for i in range(4)]
        assert [r["type"] for r in replies] == ["sync_result"] * 3 + ["error"]
        assert replies[3]["code"] == "rate_limited"
        await ws.close()
