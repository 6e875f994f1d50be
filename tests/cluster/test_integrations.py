"""Integrations on a real 3-node cluster (Redis + PostgreSQL): an outgoing webhook's events are delivered by
one node each, whatever node the messages were sent to; bots and incoming webhooks work across nodes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from hubbub.client import HubbubClient
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster, running_cluster
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, in_thread
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


async def before_send(request: dict[str, Any]) -> dict[str, Any]:
    """The cluster's before-send hook: refuses "blocked", rewrites "shout", allows the rest."""
    text = request["body"].get("text", "")
    if text == "blocked":
        return {"action": "reject", "reason": "not on this cluster"}
    if text == "shout":
        return {"action": "rewrite", "body": {"text": "SHOUT"}}
    return {"action": "allow"}


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    """An OpenID Connect provider and the before-send hook, on loopback for the whole module."""
    hook = Receiver()
    hook.respond = before_send
    idp = Provider()
    idp.hook = hook  # type: ignore[attr-defined]
    with in_thread(idp, hook):
        yield idp


@pytest.fixture(scope="module")
def hooks_cluster(tmp_path_factory: pytest.TempPathFactory, provider: Provider) -> Iterator[Cluster]:
    env = {
        "HUBBUB_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",
        "HUBBUB_WEBHOOK_POLL_S": "0.05",
        "HUBBUB_OIDC_ISSUER": provider.issuer,
        "HUBBUB_OIDC_CLIENT_ID": CLIENT_ID,
        "HUBBUB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "HUBBUB_BEFORE_SEND_URL": provider.hook.url,  # type: ignore[attr-defined]
    }
    with running_cluster(tmp_path_factory.mktemp("hooks"), env) as running:
        yield running


async def test_outgoing_webhook_fires_once_per_event_across_nodes(hooks_cluster: Cluster) -> None:
    receiver = await Receiver().start()
    clients = [HubbubClient(hooks_cluster.url(i)) for i in range(3)]
    try:
        for i, c in enumerate(clients):
            await c.register(f"hk{i}_{receiver.port}", PASSWORD)
        owner = clients[0]
        for c in clients[1:]:
            await owner.befriend(c)
        group = await owner.api(
            "POST", "/api/v1/groups", {"name": "hooks", "members": [c.user_id for c in clients[1:]]}
        )
        conv = group["conv"]
        hook = await owner.api(
            "POST", "/api/v1/webhooks/outgoing", {"conv": conv, "url": receiver.url, "events": ["message"]}
        )
        receiver.secret = hook["secret"]
        count = 60
        sends = [
            clients[i % 3].api(
                "POST", "/api/v1/messages", {"cmid": f"x{i}", "conv": conv, "body": {"text": f"t{i}"}}
            )
            for i in range(count)
        ]
        acks = await asyncio.gather(*sends)
        got = await receiver.wait_for(count, timeout=30 * TIMEOUT_FACTOR)
        await asyncio.sleep(1.0)  # anything delivered twice would arrive by now
        ids = Counter(e["id"] for e in receiver.received)
        assert len(receiver.received) == count and set(ids.values()) == {1}
        assert [e["message"]["seq"] for e in got] == sorted(a["seq"] for a in acks)  # in order, too
        assert receiver.bad_signatures == 0
        log = (await owner.api("GET", f"/api/v1/webhooks/outgoing/{hook['id']}/deliveries", limit=50))[
            "deliveries"
        ]
        assert all(d["ok"] for d in log) and {d["node"] for d in log} <= {"n1", "n2", "n3"}
    finally:
        for c in clients:
            await c.close()
        await receiver.stop()


async def test_bots_and_incoming_webhooks_across_nodes(hooks_cluster: Cluster) -> None:
    owner = HubbubClient(hooks_cluster.url(0))
    as_bot = HubbubClient(hooks_cluster.url(1))
    poster = HubbubClient(hooks_cluster.url(2))
    try:
        await owner.register("cl_bot_owner", PASSWORD)
        bot = await owner.api("POST", "/api/v1/bots", {"username": "cl_bot"})
        bot_id = bot["user"]["id"]
        issued = await owner.api("POST", f"/api/v1/bots/{bot_id}/tokens", {"scopes": ["send", "read"]})
        await owner.api("POST", "/api/v1/friends/requests", {"to": bot_id})
        group = await owner.api("POST", "/api/v1/groups", {"name": "bots", "members": [bot_id]})
        conv = group["conv"]
        as_bot.use_bot_token(issued["secret"])
        await as_bot.connect()  # on node 2
        await owner.connect()  # on node 1
        await owner.send_text("ping", conv=conv)
        heard = await as_bot.next_event(
            "msg", where=lambda f: f["msg"]["conv"] == conv and f["msg"]["type"] == "text"
        )
        assert heard["msg"]["body"]["text"] == "ping"
        await as_bot.send_text("pong", conv=conv)
        reply = await owner.next_event("msg", where=lambda f: f["msg"]["sender"] == bot_id)
        assert reply["msg"]["body"]["text"] == "pong"

        made = await owner.api("POST", "/api/v1/webhooks/incoming", {"conv": conv, "bot_id": bot_id})
        first = await poster.api("POST", made["url"], {"text": "from CI", "client_id": "c-1"}, auth=False)
        poster.base_url = hooks_cluster.url(0)  # the retry lands on another node: still one message
        again = await poster.api("POST", made["url"], {"text": "from CI", "client_id": "c-1"}, auth=False)
        assert again["id"] == first["id"]
        pushed = await owner.next_event(
            "msg", where=lambda f: f["msg"].get("body", {}).get("text") == "from CI"
        )
        assert pushed["msg"]["sender"] == bot_id

        # Revoked on node 1: the bot's socket on node 2 is closed.
        await owner.api("DELETE", f"/api/v1/bots/{bot_id}/tokens/{issued['token']['id']}")
        await as_bot.wait_until(lambda: as_bot.close_code == 4403, timeout=10 * TIMEOUT_FACTOR)
    finally:
        for c in (owner, as_bot, poster):
            await c.close()


async def test_sign_in_started_on_one_node_finishes_on_others(hooks_cluster: Cluster) -> None:
    """The sign-in's state and ticket live in PostgreSQL: started on node 1, the provider's redirect lands on
    node 2, the ticket is exchanged on node 3; the state replayed on node 3 is refused."""
    async with aiohttp.ClientSession() as http:

        async def location(url: str) -> str:
            async with http.get(url, allow_redirects=False) as resp:
                assert resp.status == 302, await resp.text()
                return resp.headers["Location"]

        to_provider = await location(hooks_cluster.url(0) + "/api/v1/auth/oidc/start")
        callback = await location(to_provider)
        on_two = callback.replace(hooks_cluster.url(0), hooks_cluster.url(1))
        ticket = parse_qs(urlsplit(await location(on_two)).query)["sso_ticket"][0]
        replay = callback.replace(hooks_cluster.url(0), hooks_cluster.url(2))
        assert "sso_error" in parse_qs(urlsplit(await location(replay)).query)
    async with HubbubClient(hooks_cluster.url(2)) as client:
        tokens = await client.api("POST", "/api/v1/auth/oidc/exchange", {"ticket": ticket}, auth=False)
        assert tokens["user"]["nickname"] == "Alice SSO"


async def test_before_send_hook_on_every_node(hooks_cluster: Cluster) -> None:
    a, b = HubbubClient(hooks_cluster.url(1)), HubbubClient(hooks_cluster.url(2))
    try:
        await a.register("bs_cl_a", PASSWORD)
        await b.register("bs_cl_b", PASSWORD)
        await a.befriend(b)
        from hubbub.client import ApiError

        with pytest.raises(ApiError) as refused:
            await a.api(
                "POST", "/api/v1/messages", {"cmid": "q1", "to": b.user_id, "body": {"text": "blocked"}}
            )
        assert refused.value.code == "content_rejected" and refused.value.message == "not on this cluster"
        ack = await b.api(
            "POST", "/api/v1/messages", {"cmid": "q2", "to": a.user_id, "body": {"text": "shout"}}
        )
        page = await a.api("GET", f"/api/v1/conversations/{ack['conv']}/messages")
        assert page["messages"][-1]["body"] == {"text": "SHOUT"}
    finally:
        await a.close()
        await b.close()
