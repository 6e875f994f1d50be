"""Token security: expiry, rotation, replay detection with a short grace for lost responses, and sessions that
end closing their live sockets (docs/security.md, "Tokens")."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from hubbub.client import ApiError, ClosedError, HubbubClient
from tests.conftest import PASSWORD, base_url
from tests.security.conftest import RELAXED


async def refresh_with(client: HubbubClient, token: str) -> dict:
    return dict(await client.api("POST", "/api/v1/auth/refresh", {"refresh_token": token}, auth=False))


async def test_expired_access_token_is_refused_on_http_and_websocket(make_node):
    node = await make_node(**RELAXED, access_token_ttl_s=1)
    client = HubbubClient(base_url(node))
    try:
        await client.register("expiring", PASSWORD)
        await asyncio.sleep(2.1)
        with pytest.raises(ApiError) as http_refusal:
            await client.api("GET", "/api/v1/me")
        assert (http_refusal.value.status, http_refusal.value.code) == (401, "token_expired")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(base_url(node).replace("http", "ws") + "/ws")
            await ws.send_json({"type": "auth", "token": client.access_token, "terminal": "web"})
            error = await ws.receive_json(timeout=5)
            assert (error["type"], error["code"]) == ("error", "token_expired")
            await ws.receive(timeout=5)
            assert ws.close_code == 4401
        await client.refresh()
        await client.connect()  # the fresh token works
    finally:
        await client.close()


async def test_a_lost_refresh_response_can_be_retried_within_the_grace(make_node):
    node = await make_node(**RELAXED, refresh_reuse_grace_s=10)
    client = HubbubClient(base_url(node))
    try:
        await client.register("retrier", PASSWORD)
        spent = client.refresh_token
        assert spent is not None
        first = await refresh_with(client, spent)  # imagine this response never arrived
        retry = await refresh_with(client, spent)
        assert retry["refresh_token"] == first["refresh_token"]  # the same successor, nothing new minted
        client._take_tokens(retry)
        assert (await client.api("GET", "/api/v1/me"))["username"] == "retrier"
        await client.connect()
        # Once the successor is used, the spent token is a replay: the session ends, its socket closes.
        await client.refresh()
        with pytest.raises(ApiError) as replay:
            await refresh_with(client, spent)
        assert (replay.value.status, replay.value.code) == (401, "token_revoked")
        with pytest.raises(ClosedError) as closed:
            await asyncio.wait_for(client._runner, 5)  # type: ignore[arg-type]
        assert closed.value.code == 4403
        with pytest.raises(ApiError) as after:
            await client.api("GET", "/api/v1/me")
        assert after.value.code == "token_revoked"
    finally:
        await client.close()


async def test_a_replay_after_the_grace_revokes_the_family(make_node):
    node = await make_node(**RELAXED, refresh_reuse_grace_s=0.5)
    client = HubbubClient(base_url(node))
    try:
        await client.register("slowreplay", PASSWORD)
        spent = client.refresh_token
        assert spent is not None
        await client.refresh()
        await asyncio.sleep(1.2)
        with pytest.raises(ApiError) as replay:
            await refresh_with(client, spent)
        assert replay.value.code == "token_revoked"
        with pytest.raises(ApiError):
            await client.refresh()  # the successor died with its family
    finally:
        await client.close()


async def test_no_grace_when_disabled(make_node):
    node = await make_node(**RELAXED, refresh_reuse_grace_s=0)
    client = HubbubClient(base_url(node))
    try:
        await client.register("nograce", PASSWORD)
        spent = client.refresh_token
        assert spent is not None
        await client.refresh()
        with pytest.raises(ApiError) as replay:
            await refresh_with(client, spent)
        assert replay.value.code == "token_revoked"
    finally:
        await client.close()


async def test_a_revoked_session_cannot_be_refreshed_even_within_the_grace(make_node):
    node = await make_node(**RELAXED, refresh_reuse_grace_s=10)
    client = HubbubClient(base_url(node))
    try:
        await client.register("loggedout", PASSWORD)
        spent = client.refresh_token
        assert spent is not None
        await client.refresh()
        await client.api("POST", "/api/v1/auth/logout", {"refresh_token": client.refresh_token}, auth=False)
        with pytest.raises(ApiError) as retry:
            await refresh_with(client, spent)
        assert retry.value.code == "token_revoked"
    finally:
        await client.close()


async def test_a_ban_closes_live_sockets_and_ends_sessions(make_node):
    node = await make_node(**RELAXED)
    url = base_url(node)
    admin, user = HubbubClient(url), HubbubClient(url)
    try:
        await admin.register("theadmin", PASSWORD)  # the first account administers the server
        await user.register("troublemaker", PASSWORD)
        spec = await admin.api("GET", "/openapi.json", auth=False)
        ban = "/api/v1/admin/users/{user_id}/ban"
        if ban not in spec["paths"]:
            pytest.skip("no admin ban route on this server yet")
        await user.connect()
        method = next(iter(spec["paths"][ban])).upper()
        await admin.api(method, ban.format(user_id=user.user_id), {} if method != "DELETE" else None)
        with pytest.raises(ClosedError) as closed:
            await asyncio.wait_for(user._runner, 5)  # type: ignore[arg-type]
        assert closed.value.code == 4403
        with pytest.raises(ApiError) as refused:
            await user.api("GET", "/api/v1/me")
        assert refused.value.code in ("token_revoked", "forbidden")
        with pytest.raises(ApiError):
            await user.refresh()
    finally:
        await admin.close()
        await user.close()
