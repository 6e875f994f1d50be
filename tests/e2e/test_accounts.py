"""Accounts over HTTP: register, login, refresh rotation, logout, password change, profile, search."""

import asyncio

import aiohttp
import pytest

from hubbub.client import ApiError, ClosedError, HubbubClient
from tests.conftest import PASSWORD, base_url


async def test_register_login_and_profile(make_client, node):
    alice = await make_client("alice", connect=False)
    assert alice.user["username"] == "alice" and alice.user["nickname"] == "alice"
    me = await alice.api("PATCH", "/api/v1/me", {"nickname": "Alice A.", "signature": "hi there"})
    assert me["nickname"] == "Alice A." and me["signature"] == "hi there"
    assert (await alice.api("GET", "/api/v1/me"))["nickname"] == "Alice A."

    again = HubbubClient(base_url(node))
    try:
        tokens = await again.login("ALICE", PASSWORD)  # usernames are case-insensitive for login
        assert tokens["user"]["id"] == alice.user_id
        with pytest.raises(ApiError) as wrong:
            await again.login("alice", "not-the-password")
        assert (wrong.value.status, wrong.value.code) == (401, "unauthorized")
        with pytest.raises(ApiError) as nobody:
            await again.login("nobody-here", PASSWORD)
        assert nobody.value.code == "unauthorized"  # same answer: no user enumeration
    finally:
        await again.close()


async def test_register_rejects_bad_and_taken_names(make_client):
    first = await make_client("carol", connect=False)
    with pytest.raises(ApiError) as taken:
        await first.register("Carol", PASSWORD)
    assert (taken.value.status, taken.value.code) == (409, "username_taken")
    for username, password in [
        ("ab", PASSWORD),
        ("bad name!", PASSWORD),
        ("x" * 40, PASSWORD),
        ("okname", "short"),
    ]:
        with pytest.raises(ApiError) as bad:
            await first.register(username, password)
        assert (bad.value.status, bad.value.code) == (422, "invalid_field")


async def test_refresh_rotates_and_reuse_revokes_the_session(make_client):
    alice = await make_client("dave", connect=False)
    first_refresh = alice.refresh_token
    await alice.refresh()
    assert alice.refresh_token != first_refresh
    assert (await alice.api("GET", "/api/v1/me"))["id"] == alice.user_id
    await alice.refresh()  # the successor is used: a lost response can no longer explain a replay

    # Replaying the spent token: the whole session ends, including the new tokens.
    with pytest.raises(ApiError) as replay:
        await alice.api("POST", "/api/v1/auth/refresh", {"refresh_token": first_refresh}, auth=False)
    assert replay.value.code == "token_revoked"
    with pytest.raises(ApiError) as after:
        await alice.api("GET", "/api/v1/me")
    assert after.value.code == "token_revoked"
    with pytest.raises(ApiError):
        await alice.refresh()


async def test_logout_revokes_and_closes_the_socket(make_client):
    alice = await make_client("erin")
    await alice.api("POST", "/api/v1/auth/logout", {"refresh_token": alice.refresh_token}, auth=False)
    with pytest.raises(ClosedError) as closed:
        await asyncio.wait_for(alice._runner, 5)
    assert closed.value.code == 4403
    with pytest.raises(ApiError) as me:
        await alice.api("GET", "/api/v1/me")
    assert me.value.code == "token_revoked"


async def test_password_change_revokes_other_sessions_only(make_client, node):
    phone = await make_client("frank", terminal="mobile")
    web = HubbubClient(base_url(node), terminal="web")
    try:
        await web.login("frank", PASSWORD)
        await web.connect()
        with pytest.raises(ApiError) as wrong:
            await web.api(
                "POST", "/api/v1/auth/password", {"old_password": "nope-nope", "new_password": "another-pass"}
            )
        assert wrong.value.code == "unauthorized"
        await web.api(
            "POST", "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "another-pass"}
        )
        with pytest.raises(ClosedError) as closed:
            await asyncio.wait_for(phone._runner, 5)
        assert closed.value.code == 4403
        assert (await web.api("GET", "/api/v1/me"))["id"] == web.user_id  # this session stays
        with pytest.raises(ApiError):
            await web.login("frank", PASSWORD)
        await web.login("frank", "another-pass")
    finally:
        await web.close()


async def test_search_and_user_lookup(make_client):
    me = await make_client("searcher", connect=False)
    await make_client("zed_one", connect=False)
    await make_client("zed_two", connect=False)
    found = await me.api("GET", "/api/v1/users", q="zed_")
    assert [u["username"] for u in found["users"]] == ["zed_one", "zed_two"]
    assert (await me.api("GET", "/api/v1/users", q="100%"))["users"] == []
    one = found["users"][0]
    assert await me.api("GET", f"/api/v1/users/{one['id']}") == one
    with pytest.raises(ApiError) as missing:
        await me.api("GET", "/api/v1/users/999999")
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    with pytest.raises(ApiError) as empty:
        await me.api("GET", "/api/v1/users", q="")
    assert empty.value.code == "invalid_field"
    assert "password" not in str(found)


async def test_bad_tokens_and_bodies(make_client, node):
    alice = await make_client("gina", connect=False)
    url = base_url(node)
    async with aiohttp.ClientSession() as http:

        async def call(method, path, **kw):
            async with http.request(method, url + path, **kw) as resp:
                return resp.status, await resp.json(content_type=None)

        assert (await call("GET", "/api/v1/me"))[1]["error"]["code"] == "unauthorized"
        status, body = await call("GET", "/api/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        status, body = await call("POST", "/api/v1/auth/login", data=b"{not json")
        assert (status, body["error"]["code"]) == (400, "bad_request")
        status, body = await call("POST", "/api/v1/auth/login", json=[1, 2])
        assert (status, body["error"]["code"]) == (400, "bad_request")
        status, body = await call("POST", "/api/v1/auth/login", json={"username": 5, "password": "x"})
        assert (status, body["error"]["code"]) == (422, "invalid_field")
        assert "username" in body["error"]["message"]
        status, body = await call(
            "POST", "/api/v1/auth/login", data=b'{"username":"' + b"a" * 2_000_000 + b'"}'
        )
        assert (status, body["error"]["code"]) == (413, "too_large")
        status, body = await call(
            "GET", "/api/v1/nope", headers={"Authorization": f"Bearer {alice.access_token}"}
        )
        assert (status, body["error"]["code"]) == (404, "not_found")
        status, body = await call(
            "GET", "/api/v1/users/abc", headers={"Authorization": f"Bearer {alice.access_token}"}
        )
        assert (status, body["error"]["code"]) == (404, "not_found")  # integer ids match digits only


async def test_expired_access_token(make_node):
    node = await make_node(access_token_ttl_s=1)
    client = HubbubClient(base_url(node))
    try:
        await client.register("shortlived", PASSWORD)
        await asyncio.sleep(2.1)
        with pytest.raises(ApiError) as expired:
            await client.api("GET", "/api/v1/me")
        assert (expired.value.status, expired.value.code) == (401, "token_expired")
        await client.refresh()
        assert (await client.api("GET", "/api/v1/me"))["username"] == "shortlived"
    finally:
        await client.close()


async def test_openapi_and_health(node):
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url(node) + "/openapi.json") as resp:
            spec = await resp.json()
        async with http.get(base_url(node) + "/healthz") as resp:
            assert resp.status == 200
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/messages" in spec["paths"]
    assert "requestBody" in spec["paths"]["/api/v1/auth/register"]["post"]
    assert "Tokens" in spec["components"]["schemas"]


# -- names (issue 12, item 20) and the server's name (item 19) ---------------------------------------
async def register_raw(node, body: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{base_url(node)}/api/v1/auth/register", json=body) as resp:
            return resp.status, await resp.json(content_type=None)


async def test_usernames_are_checked_whole(node):
    assert (await register_raw(node, {"username": "whole", "password": PASSWORD}))[0] == 201
    for username in ["whole\n", "x" * 32 + "\n", "x" * 33, "\nwhole", "who le"]:
        status, body = await register_raw(node, {"username": username, "password": PASSWORD})
        assert (status, body["error"]["code"]) == (422, "invalid_field"), username


async def test_nicknames_lose_format_characters_and_may_not_be_invisible(make_client):
    alice = await make_client("nick_owner", connect=False)
    me = await alice.api("PATCH", "/api/v1/me", {"nickname": "\u202eevil\u202c \u2066Al\u2069\u200b"})
    assert me["nickname"] == "evil Al"
    for nickname in ["\u200b", "\u200b\u200d\u2060", "\u202e \u202c", "a\nb", "\u0007bell"]:
        with pytest.raises(ApiError) as bad:
            await alice.api("PATCH", "/api/v1/me", {"nickname": nickname})
        assert (bad.value.status, bad.value.code) == (422, "invalid_field"), repr(nickname)
    assert (await alice.api("GET", "/api/v1/me"))["nickname"] == "evil Al"


async def test_registration_cleans_the_nickname_too(node):
    status, body = await register_raw(node, {"username": "bidi_reg", "password": PASSWORD, "nickname": "\u202eX"})
    assert status == 201 and body["user"]["nickname"] == "X"
    status, body = await register_raw(node, {"username": "zw_reg", "password": PASSWORD, "nickname": "\u200b\u200b"})
    assert (status, body["error"]["code"]) == (422, "invalid_field")


async def test_the_server_name_is_reserved_and_the_server_account_is_badged(make_client, node):
    admin = await make_client("first_admin")  # the first account is an admin (first_user_admin)
    for nickname in ["Hubbub", "hubbub", "HUBBUB", "Ｈｕｂｂｕｂ", "Hub bub", "Нubbub", "Hubbu\u044c", "h.u.b.b.u.b"]:
        status, body = await register_raw(node, {"username": "faker", "password": PASSWORD, "nickname": nickname})
        assert (status, body["error"]["code"]) == (422, "invalid_field"), nickname
        with pytest.raises(ApiError) as rename:
            await admin.api("PATCH", "/api/v1/me", {"nickname": nickname})
        assert rename.value.code == "invalid_field", nickname
    for username in ["hubbub", "HubBub", "hubbub_"]:
        status, body = await register_raw(node, {"username": username, "password": PASSWORD})
        assert (status, body["error"]["code"]) == (422, "invalid_field"), username
    assert (await register_raw(node, {"username": "hubbubfan", "password": PASSWORD}))[0] == 201

    # The real server account is marked as such wherever a user object is shown; nobody else is.
    await admin.api("POST", "/api/v1/admin/notices", {"text": "maintenance at 6", "user": admin.user_id})
    push = await admin.next_event("msg", timeout=5)
    assert push["msg"]["type"] == "notice"
    server = await admin.api("GET", f"/api/v1/users/{push['msg']['sender']}")
    assert server["system"] is True and server["nickname"] == "Hubbub"
    assert (await admin.api("GET", "/api/v1/me"))["system"] is False


# -- passwords (item 22) -----------------------------------------------------------------------------
async def test_blank_and_common_passwords_are_refused(make_client, node):
    for password in ["12345678", "password", "PassWord", " " * 8, "\t" * 9, "aaaaaaaaaa", "qwertyuiop", "iloveyou"]:
        status, body = await register_raw(node, {"username": "weakling", "password": password})
        assert (status, body["error"]["code"]) == (422, "weak_password"), repr(password)
    alice = await make_client("strong_one", connect=False)
    with pytest.raises(ApiError) as weak:
        await alice.api("POST", "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "password1"})
    assert (weak.value.status, weak.value.code) == (422, "weak_password")
    await alice.api("POST", "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": "plum-kettle-42"})
