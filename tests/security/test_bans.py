"""A ban racing a login or a socket's authentication (issue 12, item 7): nothing outlives the ban.

The races are made deterministic by landing the ban at the worst moment from inside the node (the node runs
in this process): while the login's password is being checked, and between a socket's token check and its
registration. Everything the client sees goes through real sockets.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from tests.conftest import PASSWORD, base_url
from tests.security.conftest import RELAXED


async def test_a_ban_landing_while_a_login_is_checked_leaves_no_session(make_node):
    node = await make_node(**RELAXED)
    url = base_url(node)
    victim = HubbubClient(url)
    await victim.register("banrace", PASSWORD)
    passwords = node.services.auth.passwords
    verify = passwords.verify

    async def verify_then_ban(password_hash: str | None, password: str) -> bool:
        ok = await verify(password_hash, password)
        await node.services.admin.ban(victim.user_id)  # the ban commits after the login read the account
        return ok

    passwords.verify = verify_then_ban  # type: ignore[method-assign]
    late = HubbubClient(url)
    try:
        with pytest.raises(ApiError) as refused:
            await late.login("banrace", PASSWORD)
        assert (refused.value.status, refused.value.code) == (403, "forbidden")
        with pytest.raises(ApiError) as revoked:  # and the session from before the ban is gone too
            await victim.api("GET", "/api/v1/me")
        assert revoked.value.code == "token_revoked"
    finally:
        passwords.verify = verify  # type: ignore[method-assign]
        await late.close()
        await victim.close()


@pytest.mark.parametrize("how", ["ban", "revocation seen only in the database"])
async def test_a_ban_landing_while_a_socket_authenticates_closes_it(make_node, how: str):
    node = await make_node(**RELAXED)
    url = base_url(node)
    victim = HubbubClient(url)
    await victim.register("wsbanrace", PASSWORD)
    presence = node.services.presence
    connected = presence.connected

    async def ban_then_register(user_id: int, terminal: str, conn_id: str) -> Any:
        # The token was found valid a moment ago; now the ban commits, before this connection registers.
        if how == "ban":
            await node.services.admin.ban(user_id)
        else:  # as when the ban's close reached the registry before this connection was in it (a cluster)
            await node.storage.ban_user(user_id)
        return await connected(user_id, terminal, conn_id)

    presence.connected = ban_then_register  # type: ignore[method-assign]
    try:
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
            await ws.send_json({"type": "auth", "token": victim.access_token, "terminal": "web"})
            frames = []
            while True:
                msg = await ws.receive(timeout=5)
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    break
                frames.append(msg.json())
            assert all(f["type"] != "auth_ok" for f in frames), frames
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 4403)
        assert not node.hub.by_user
    finally:
        presence.connected = connected  # type: ignore[method-assign]
        await victim.close()
