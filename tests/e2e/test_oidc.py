"""Single sign-on with OpenID Connect against a real provider on loopback (tests/oidc_provider.py): the whole
Authorization Code + PKCE flow through the node's routes, and each bad token or replay refused."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from tests.conftest import base_url
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider


@pytest.fixture
async def provider():
    p = await Provider().start()
    yield p
    await p.stop()


def sso(provider: Provider, **extra):
    return {
        "oidc_issuer": provider.issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "oidc_name": "Acme ID",
        **extra,
    }


async def redirect(http: aiohttp.ClientSession, url: str) -> str:
    async with http.get(url, allow_redirects=False) as resp:
        assert resp.status == 302, await resp.text()
        return resp.headers["Location"]


async def sign_in(http: aiohttp.ClientSession, node_url: str) -> tuple[dict[str, list[str]], str]:
    """Start, let the provider sign in, follow back to the node's callback: (the web client's query, the
    callback URL, for replaying it)."""
    to_provider = await redirect(http, node_url + "/api/v1/auth/oidc/start")
    params = parse_qs(urlsplit(to_provider).query)
    assert params["code_challenge_method"] == ["S256"] and params["client_id"] == [CLIENT_ID]
    callback = await redirect(http, to_provider)
    assert callback.startswith(node_url + "/api/v1/auth/oidc/callback?")
    back = await redirect(http, callback)
    return parse_qs(urlsplit(back).query), callback


async def test_sign_in_links_by_subject_and_refuses_replays(make_node, provider):
    node = await make_node(**sso(provider))
    url = base_url(node)
    client = HubbubClient(url)
    try:
        assert (await client.api("GET", "/api/v1/auth/oidc/providers", auth=False))["providers"] == [
            {"id": "oidc", "name": "Acme ID", "start": "/api/v1/auth/oidc/start"}
        ]
        async with aiohttp.ClientSession() as http:
            query, callback = await sign_in(http, url)
            ticket = query["sso_ticket"][0]
            tokens = await client.api("POST", "/api/v1/auth/oidc/exchange", {"ticket": ticket}, auth=False)
            assert tokens["user"]["username"] == "alice.sso" and tokens["user"]["nickname"] == "Alice SSO"
            client._take_tokens(tokens)
            assert (await client.api("GET", "/api/v1/me"))["id"] == tokens["user"]["id"]
            with pytest.raises(ApiError) as used:  # a ticket is good once
                await client.api("POST", "/api/v1/auth/oidc/exchange", {"ticket": ticket}, auth=False)
            assert used.value.code == "unauthorized"

            # The provider's redirect replayed: its state was used, so nothing is signed in.
            replayed = parse_qs(urlsplit(await redirect(http, callback)).query)
            assert "sso_ticket" not in replayed and "replayed" in replayed["sso_error"][0]
            forged = parse_qs(
                urlsplit(await redirect(http, url + "/api/v1/auth/oidc/callback?state=x&code=y")).query
            )
            assert "sso_ticket" not in forged

            # Same subject again, even with another display name: the same account.
            provider.claims = {"preferred_username": "renamed", "name": "Alice Renamed"}
            again, _ = await sign_in(http, url)
            second = await client.api(
                "POST", "/api/v1/auth/oidc/exchange", {"ticket": again["sso_ticket"][0]}, auth=False
            )
            assert second["user"]["id"] == tokens["user"]["id"]

            # Another subject whose preferred name is taken gets a numbered one.
            provider.subject = "bob-sub-2"
            provider.claims = {"preferred_username": "alice.sso"}
            other, _ = await sign_in(http, url)
            third = await client.api(
                "POST", "/api/v1/auth/oidc/exchange", {"ticket": other["sso_ticket"][0]}, auth=False
            )
            assert third["user"]["id"] != tokens["user"]["id"] and third["user"]["username"].startswith(
                "alice.sso-"
            )
    finally:
        await client.close()


@pytest.mark.parametrize("sabotage", ["bad_signature", "wrong_audience", "expired", "wrong_nonce"])
async def test_bad_id_tokens_are_refused(make_node, provider, sabotage):
    node = await make_node(**sso(provider))
    provider.sabotage = sabotage
    async with aiohttp.ClientSession() as http:
        query, _ = await sign_in(http, base_url(node))
    assert "sso_ticket" not in query, sabotage
    reason = {"bad_signature": "signature", "wrong_audience": "aud", "expired": "expired", "wrong_nonce": "nonce"}
    error = query["sso_error"][0]
    assert error.startswith("single sign-on refused") and reason[sabotage] in error, error


async def test_registration_mode_and_auto_creation_are_respected(make_node, provider):
    node = await make_node(**sso(provider, registration="closed"))
    url = base_url(node)
    first = HubbubClient(url)
    try:
        await first.register("first_admin", "correct-horse-battery")  # a fresh server's first account
        async with aiohttp.ClientSession() as http:
            query, _ = await sign_in(http, url)
        assert "sso_ticket" not in query and "registration is closed" in query["sso_error"][0]
    finally:
        await first.close()
    node2 = await make_node(
        **sso(provider, oidc_auto_create=False), data_dir=str(node.config.data_dir) + "-2"
    )
    async with aiohttp.ClientSession() as http:
        query, _ = await sign_in(http, base_url(node2))
    assert "sso_ticket" not in query and "no account here is linked" in query["sso_error"][0]


async def test_start_without_a_provider_is_not_found(node):
    async with HubbubClient(base_url(node)) as client:
        assert (await client.api("GET", "/api/v1/auth/oidc/providers", auth=False))["providers"] == []
        with pytest.raises(ApiError) as missing:
            await client.api("GET", "/api/v1/auth/oidc/start", auth=False)
        assert missing.value.code == "not_found"
