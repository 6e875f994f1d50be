"""Bots, incoming and outgoing webhooks and the before-send hook, end to end on one node (real sockets, a
real receiver on loopback)."""

from __future__ import annotations

import asyncio
import time

import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.protocol.close_codes import Close
from tests.conftest import base_url
from tests.webhook_receiver import Receiver

ALLOW_LOOPBACK = {"webhook_allow_networks": "127.0.0.0/8", "webhook_poll_s": 0.05}


async def make_bot(owner: HubbubClient, name: str, scopes: list[str]) -> tuple[dict, HubbubClient]:
    """A bot owned by ``owner`` and a client acting as it with a fresh token."""
    bot = await owner.api("POST", "/api/v1/bots", {"username": name, "nickname": name.title()})
    issued = await owner.api(
        "POST", f"/api/v1/bots/{bot['user']['id']}/tokens", {"scopes": scopes, "name": "t"}
    )
    assert issued["secret"].startswith("hbb_") and issued["token"]["scopes"] == sorted(
        scopes, key=["send", "read", "profile"].index
    )
    client = HubbubClient(owner.base_url)
    client.use_bot_token(issued["secret"])
    client.user = bot["user"]
    return {**bot, "token": issued["token"]}, client


async def delivery_log(owner: HubbubClient, hook_id: int, count: int) -> list[dict]:
    """The webhook's log once it holds ``count`` entries (the node writes an entry after the receiver
    answered, so it may trail the receiver by a moment)."""
    deadline = time.monotonic() + 10
    while True:
        log = (await owner.api("GET", f"/api/v1/webhooks/outgoing/{hook_id}/deliveries"))["deliveries"]
        if len(log) >= count or time.monotonic() > deadline:
            return list(log)
        await asyncio.sleep(0.05)


async def group_with(owner: HubbubClient, *members: int) -> str:
    group = await owner.api("POST", "/api/v1/groups", {"name": "integrations", "members": list(members)})
    return f"g:{group['id']}"


async def test_bot_account_tokens_and_scopes(make_client):
    alice = await make_client("bt_alice")
    bob = await make_client("bt_bob")
    await alice.befriend(bob)
    bot, as_bot = await make_bot(alice, "helper_bot", ["send", "read"])
    bot_id = bot["user"]["id"]
    try:
        assert bot["user"]["bot"] is True and bot["owner_id"] == alice.user_id
        assert (await alice.api("GET", f"/api/v1/users/{bot_id}"))["bot"] is True
        assert [b["user"]["id"] for b in (await alice.api("GET", "/api/v1/bots"))["bots"]] == [bot_id]
        assert (await bob.api("GET", "/api/v1/bots"))["bots"] == []
        with pytest.raises(ApiError) as not_bobs:  # someone else's bot is not found
            await bob.api("POST", f"/api/v1/bots/{bot_id}/tokens", {"scopes": ["send"]})
        assert not_bobs.value.code == "not_found"
        with pytest.raises(ApiError) as bad_scope:
            await alice.api("POST", f"/api/v1/bots/{bot_id}/tokens", {"scopes": ["admin"]})
        assert bad_scope.value.code == "invalid_field"
        async with HubbubClient(alice.base_url) as stranger:
            with pytest.raises(ApiError) as no_login:  # a bot has no password
                await stranger.login("helper_bot", "")
        assert no_login.value.code == "unauthorized"

        # Befriended (a bot accepts at once) and added to a group like anyone.
        request = await alice.api("POST", "/api/v1/friends/requests", {"to": bot_id})
        assert request["status"] == "accepted"
        conv = await group_with(alice, bob.user_id, bot_id)

        ack = await as_bot.api(
            "POST", "/api/v1/messages", {"cmid": "b1", "conv": conv, "body": {"text": "beep"}}
        )
        pushed = await bob.next_event(
            "msg", where=lambda f: f["msg"]["conv"] == conv and f["msg"]["type"] == "text"
        )
        assert pushed["msg"]["sender"] == bot_id and pushed["msg"]["seq"] == ack["seq"]
        page = await as_bot.api("GET", f"/api/v1/conversations/{conv}/messages")
        assert [m["body"].get("text") for m in page["messages"]][-1] == "beep"

        # The scopes: no profile scope, no admin routes, nobody else's conversations.
        for method, path, body in (
            ("GET", "/api/v1/me", None),
            ("GET", "/api/v1/admin/users", None),
            ("POST", "/api/v1/groups", {"name": "x", "members": []}),
            ("POST", "/api/v1/bots", {"username": "bot_by_bot"}),
        ):
            with pytest.raises(ApiError) as refused:
                await as_bot.api(method, path, body)
            assert refused.value.code == "forbidden", path
        private = f"p:{alice.user_id}:{bob.user_id}"
        await alice.send_text("between us", to=bob.user_id)
        with pytest.raises(ApiError) as not_in:
            await as_bot.api("GET", f"/api/v1/conversations/{private}/messages")
        assert not_in.value.code == "forbidden"

        # Over the WebSocket too, and revoking the token closes the socket and refuses it afterwards.
        await as_bot.connect()
        assert as_bot.user_id == bot_id
        await alice.api("DELETE", f"/api/v1/bots/{bot_id}/tokens/{bot['token']['id']}")
        await as_bot.wait_until(lambda: as_bot.close_code == Close.REVOKED)
        with pytest.raises(ApiError) as revoked:
            await as_bot.api("GET", f"/api/v1/conversations/{conv}/messages")
        assert revoked.value.code == "token_revoked"
        listed = (await alice.api("GET", f"/api/v1/bots/{bot_id}/tokens"))["tokens"]
        assert [t["revoked"] for t in listed] == [True]
    finally:
        await as_bot.close()


async def test_bot_without_read_scope_cannot_open_a_socket(make_client):
    alice = await make_client("bs_alice")
    _bot, as_bot = await make_bot(alice, "sender_bot", ["send", "profile"])
    try:
        me = await as_bot.api("GET", "/api/v1/me")
        assert me["bot"] is True
        changed = await as_bot.api("PATCH", "/api/v1/me", {"signature": "I only send"})
        assert changed["signature"] == "I only send"
        as_bot.auto_reconnect = False
        with pytest.raises(Exception):  # noqa: B017 - closed with 4401 (forbidden), whatever the client raises
            await as_bot.connect(timeout=3)
    finally:
        await as_bot.close()


async def test_bot_tokens_are_rate_limited(make_node):
    node = await make_node(bot_request_burst=3, bot_requests_per_minute=1)
    alice = HubbubClient(base_url(node))
    try:
        await alice.register("rl_alice", "correct-horse-battery")
        _bot, as_bot = await make_bot(alice, "busy_bot", ["read"])
        for _ in range(3):
            await as_bot.api("GET", "/api/v1/conversations")
        with pytest.raises(ApiError) as limited:
            await as_bot.api("GET", "/api/v1/conversations")
        assert limited.value.code == "rate_limited"
        await as_bot.close()
    finally:
        await alice.close()


async def test_incoming_webhook_posts_as_the_bot_idempotently(make_client):
    alice = await make_client("in_alice")
    bot, as_bot = await make_bot(alice, "hook_bot", ["read"])
    bot_id = bot["user"]["id"]
    await alice.api("POST", "/api/v1/friends/requests", {"to": bot_id})
    conv = await group_with(alice, bot_id)
    created = await alice.api(
        "POST", "/api/v1/webhooks/incoming", {"conv": conv, "bot_id": bot_id, "name": "ci"}
    )
    url = created["url"]
    assert url.startswith("/api/v1/hooks/hbw_")
    anonymous = HubbubClient(alice.base_url)
    try:
        first = await anonymous.api(
            "POST", url, {"text": "build **green**", "markdown": True, "client_id": "run-1"}, auth=False
        )
        again = await anonymous.api(
            "POST", url, {"text": "build **green**", "markdown": True, "client_id": "run-1"}, auth=False
        )
        assert again["id"] == first["id"] and again["seq"] == first["seq"]
        pushed = await alice.next_event(
            "msg", where=lambda f: f["msg"]["conv"] == conv and f["msg"]["type"] == "text"
        )
        assert pushed["msg"]["sender"] == bot_id
        assert pushed["msg"]["body"] == {"text": "build **green**", "format": "markdown"}

        # An attachment URL is not fetched: it becomes a link in the text.
        linked = await anonymous.api(
            "POST", url, {"text": "report", "attachment_url": "http://10.0.0.1/report.pdf"}, auth=False
        )
        page = await alice.api("GET", f"/api/v1/conversations/{conv}/messages")
        stored = next(m for m in page["messages"] if m["seq"] == linked["seq"])
        assert stored["body"]["text"] == "report\nhttp://10.0.0.1/report.pdf"

        for body, code in (
            ({}, "invalid_field"),
            ({"text": "x", "attachment_url": "file:///etc/passwd"}, "invalid_field"),
            ({"text": "x", "unknown": 1}, "invalid_field"),
            ({"text": "x", "client_id": "c" * 49}, "invalid_field"),
        ):
            with pytest.raises(ApiError) as bad:
                await anonymous.api("POST", url, body, auth=False)
            assert bad.value.code == code, body
        with pytest.raises(ApiError) as unknown:
            await anonymous.api("POST", "/api/v1/hooks/hbw_nope", {"text": "x"}, auth=False)
        assert unknown.value.code == "not_found"

        # Only for a conversation the creator and the bot are in.
        with pytest.raises(ApiError) as not_member:
            await alice.api("POST", "/api/v1/webhooks/incoming", {"conv": "g:999999", "bot_id": bot_id})
        assert not_member.value.code in ("forbidden", "not_found")
        hooks = (await alice.api("GET", "/api/v1/webhooks/incoming"))["hooks"]
        await alice.api("DELETE", f"/api/v1/webhooks/incoming/{hooks[0]['id']}")
        with pytest.raises(ApiError) as revoked:
            await anonymous.api("POST", url, {"text": "after"}, auth=False)
        assert revoked.value.code == "not_found"
    finally:
        await anonymous.close()
        await as_bot.close()


@pytest.fixture
async def receiver():
    r = await Receiver().start()
    yield r
    await r.stop()


async def test_outgoing_webhook_delivers_signed_events_in_order(make_node, receiver):
    node = await make_node(**ALLOW_LOOPBACK)
    alice, bob, carol = (HubbubClient(base_url(node)) for _ in range(3))
    try:
        for c, name in ((alice, "out_alice"), (bob, "out_bob"), (carol, "out_carol")):
            await c.register(name, "correct-horse-battery")
        await alice.befriend(bob)
        await alice.befriend(carol)
        conv = await group_with(alice, bob.user_id)
        hook = await alice.api(
            "POST",
            "/api/v1/webhooks/outgoing",
            {"conv": conv, "url": receiver.url, "events": ["message", "member"]},
        )
        receiver.secret = hook["secret"]
        for i in range(3):
            await bob.api(
                "POST", "/api/v1/messages", {"cmid": f"o{i}", "conv": conv, "body": {"text": f"m{i}"}}
            )
        await alice.api("POST", f"/api/v1/groups/{conv[2:]}/members", {"users": [carol.user_id]})
        got = await receiver.wait_for(4)
        assert [e["type"] for e in got] == ["message", "message", "message", "member"]
        assert [e["message"]["body"].get("text") for e in got[:3]] == ["m0", "m1", "m2"]
        assert got[0]["sender"]["id"] == bob.user_id and got[3]["message"]["body"]["event"] == "joined"
        assert len({e["id"] for e in got}) == 4 and all(
            e["_headers"]["Hubbub-Event-Id"] == e["id"] for e in got
        )
        assert receiver.bad_signatures == 0
        log = await delivery_log(alice, hook["id"], 4)
        assert len(log) == 4 and all(d["ok"] and d["status"] == 200 for d in log)
        with pytest.raises(ApiError) as not_bobs:
            await bob.api("GET", f"/api/v1/webhooks/outgoing/{hook['id']}/deliveries")
        assert not_bobs.value.code == "not_found"
        with pytest.raises(ApiError) as bad_url:
            await alice.api(
                "POST", "/api/v1/webhooks/outgoing", {"conv": conv, "url": "ftp://x", "events": ["message"]}
            )
        assert bad_url.value.code == "invalid_field"
        with pytest.raises(ApiError) as not_member:
            await carol.api(
                "POST",
                "/api/v1/webhooks/outgoing",
                {"conv": f"p:{alice.user_id}:{bob.user_id}", "url": receiver.url, "events": ["message"]},
            )
        assert not_member.value.code == "forbidden"
    finally:
        for c in (alice, bob, carol):
            await c.close()


async def test_outgoing_webhook_retries_then_is_disabled_with_a_notice(make_node, receiver):
    node = await make_node(**ALLOW_LOOPBACK, webhook_retry_base_s=0.05, webhook_max_failures=3)
    alice = HubbubClient(base_url(node))
    bob = HubbubClient(base_url(node))
    try:
        await alice.register("rt_alice", "correct-horse-battery")
        await bob.register("rt_bob", "correct-horse-battery")
        await alice.befriend(bob)
        conv = await group_with(alice, bob.user_id)
        hook = await alice.api(
            "POST", "/api/v1/webhooks/outgoing", {"conv": conv, "url": receiver.url, "events": ["message"]}
        )
        receiver.secret = hook["secret"]
        receiver.plan = [500, 503]  # two failures, then it works: delivered once, on the third attempt
        await bob.api("POST", "/api/v1/messages", {"cmid": "r1", "conv": conv, "body": {"text": "retry me"}})
        got = await receiver.wait_for(1)
        assert got[0]["message"]["body"]["text"] == "retry me"
        log = await delivery_log(alice, hook["id"], 3)
        assert [(d["attempt"], d["status"], d["ok"]) for d in reversed(log)] == [
            (1, 500, False),
            (2, 503, False),
            (3, 200, True),
        ]
        assert len({d["event_id"] for d in log}) == 1  # the same idempotency key on every attempt

        await alice.connect()
        receiver.plan = [500] * 10
        await bob.api("POST", "/api/v1/messages", {"cmid": "r2", "conv": conv, "body": {"text": "never"}})
        notice = await alice.next_event(
            "msg", timeout=10, where=lambda f: "disabled" in str(f["msg"]["body"].get("text", ""))
        )
        assert str(hook["id"]) in notice["msg"]["body"]["text"]
        listed = (await alice.api("GET", "/api/v1/webhooks/outgoing"))["hooks"]
        assert listed[0]["enabled"] is False and listed[0]["failures"] == 3
        # Enabled again, it resumes at the event it stopped at.
        receiver.plan = []
        await alice.api("POST", f"/api/v1/webhooks/outgoing/{hook['id']}/enable")
        got = await receiver.wait_for(2)
        assert got[1]["message"]["body"]["text"] == "never"
    finally:
        await alice.close()
        await bob.close()


async def test_outgoing_webhooks_wake_on_work_not_on_their_sweep(make_node, receiver):
    """With the sweep a minute away, a webhook still fires at once: for a message this node stored, a member
    event, a retry as its backoff ends, a webhook enabled again. Seconds here would mean the sweep did it."""
    slow = {"webhook_allow_networks": "127.0.0.0/8", "webhook_poll_s": 60.0}
    node = await make_node(**slow, webhook_retry_base_s=0.2, webhook_max_failures=2)
    alice, bob = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await alice.register("wk_alice", "correct-horse-battery")
        await bob.register("wk_bob", "correct-horse-battery")
        await alice.befriend(bob)
        conv = await group_with(alice)
        hook = await alice.api(
            "POST",
            "/api/v1/webhooks/outgoing",
            {"conv": conv, "url": receiver.url, "events": ["message", "member"]},
        )
        receiver.plan = [500]  # the first attempt fails: the retry comes ~0.2 s later
        await alice.api("POST", "/api/v1/messages", {"cmid": "w0", "conv": conv, "body": {"text": "m0"}})
        await alice.api("POST", "/api/v1/messages", {"cmid": "w1", "conv": conv, "body": {"text": "m1"}})
        await alice.api("POST", f"/api/v1/groups/{conv[2:]}/members", {"users": [bob.user_id]})
        got = await receiver.wait_for(3, timeout=5)
        assert [e["type"] for e in got] == ["message", "message", "member"]
        assert all(e["_arrived_ms"] - e["message"]["ts"] < 2000 for e in got)
        receiver.plan = [500, 500]  # disabled after two failures
        await alice.api("POST", "/api/v1/messages", {"cmid": "w2", "conv": conv, "body": {"text": "m2"}})
        for _ in range(50):
            if not (await alice.api("GET", "/api/v1/webhooks/outgoing"))["hooks"][0]["enabled"]:
                break
            await asyncio.sleep(0.1)
        await alice.api("POST", f"/api/v1/webhooks/outgoing/{hook['id']}/enable")
        got = await receiver.wait_for(4, timeout=5)
        assert got[3]["message"]["body"]["text"] == "m2"
    finally:
        await alice.close()
        await bob.close()


async def test_outgoing_webhook_refuses_loopback_by_default(make_node, receiver):
    node = await make_node(webhook_poll_s=0.05)
    alice = HubbubClient(base_url(node))
    try:
        await alice.register("lb_alice", "correct-horse-battery")
        bot, as_bot = await make_bot(alice, "lb_bot", ["read"])
        await as_bot.close()
        await alice.api("POST", "/api/v1/friends/requests", {"to": bot["user"]["id"]})
        conv = await group_with(alice, bot["user"]["id"])
        for url in (receiver.url, f"http://localhost:{receiver.port}/hook"):
            hook = await alice.api(
                "POST", "/api/v1/webhooks/outgoing", {"conv": conv, "url": url, "events": ["message"]}
            )
            await alice.api(
                "POST", "/api/v1/messages", {"cmid": f"lb-{url}", "conv": conv, "body": {"text": "x"}}
            )
            deadline = time.monotonic() + 5
            log: list = []
            while time.monotonic() < deadline and not log:
                log = (await alice.api("GET", f"/api/v1/webhooks/outgoing/{hook['id']}/deliveries"))[
                    "deliveries"
                ]
                await asyncio.sleep(0.05)
            assert log and not log[0]["ok"] and log[0]["response"].startswith("refused"), log
            await alice.api("DELETE", f"/api/v1/webhooks/outgoing/{hook['id']}")
        assert receiver.received == []
    finally:
        await alice.close()


async def test_mention_webhook_gets_only_the_bots_mentions(make_node, receiver):
    node = await make_node(**ALLOW_LOOPBACK)
    alice = HubbubClient(base_url(node))
    try:
        await alice.register("mn_alice", "correct-horse-battery")
        bot, as_bot = await make_bot(alice, "mention_bot", ["send", "read"])
        bot_id = bot["user"]["id"]
        await alice.api("POST", "/api/v1/friends/requests", {"to": bot_id})
        conv = await group_with(alice, bot_id)
        hook = await alice.api(
            "POST",
            "/api/v1/webhooks/outgoing",
            {"conv": conv, "url": receiver.url, "events": ["mention"], "bot_id": bot_id},
        )
        receiver.secret = hook["secret"]
        await alice.api("POST", "/api/v1/messages", {"cmid": "n1", "conv": conv, "body": {"text": "nobody"}})
        await alice.api(
            "POST",
            "/api/v1/messages",
            {"cmid": "n2", "conv": conv, "body": {"text": "@bot hi", "mentions": [bot_id]}},
        )
        # The bot's own messages never come back to it.
        await as_bot.api(
            "POST",
            "/api/v1/messages",
            {"cmid": "n3", "conv": conv, "body": {"text": "self", "mentions": [bot_id]}},
        )
        await alice.api(
            "POST",
            "/api/v1/messages",
            {"cmid": "n4", "conv": conv, "body": {"text": "again", "mentions": [bot_id]}},
        )
        got = await receiver.wait_for(2)
        await asyncio.sleep(0.3)
        assert [(e["type"], e["message"]["body"]["text"]) for e in receiver.received] == [
            ("mention", "@bot hi"),
            ("mention", "again"),
        ]
        with pytest.raises(ApiError) as needs_bot:
            await alice.api(
                "POST",
                "/api/v1/webhooks/outgoing",
                {"conv": conv, "url": receiver.url, "events": ["mention"]},
            )
        assert needs_bot.value.code == "invalid_field"
        assert got
        await as_bot.close()
    finally:
        await alice.close()


async def test_before_send_hook_allows_rejects_rewrites_and_does_not_block_others(make_node, receiver):
    async def decide(request: dict) -> dict:
        text = request["body"].get("text", "")
        if "forbidden" in text:
            return {"action": "reject", "reason": "no forbidden words here"}
        if text == "hello":
            return {"action": "rewrite", "body": {"text": "HELLO"}}
        if text == "slow":
            await asyncio.sleep(1.5)
        if text == "too slow":
            await asyncio.sleep(5)
        return {"action": "allow"}

    receiver.respond = decide
    node = await make_node(
        before_send_url=receiver.url, before_send_timeout_s=3, webhook_allow_networks="127.0.0.0/8"
    )
    alice, bob = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await alice.register("bs_alice", "correct-horse-battery")
        await bob.register("bs_bob", "correct-horse-battery")
        await alice.befriend(bob)
        with pytest.raises(ApiError) as rejected:
            await alice.api(
                "POST", "/api/v1/messages", {"cmid": "f1", "to": bob.user_id, "body": {"text": "forbidden"}}
            )
        assert (
            rejected.value.code == "content_rejected" and rejected.value.message == "no forbidden words here"
        )
        ack = await alice.api(
            "POST", "/api/v1/messages", {"cmid": "h1", "to": bob.user_id, "body": {"text": "hello"}}
        )
        conv = ack["conv"]
        page = await bob.api("GET", f"/api/v1/conversations/{conv}/messages")
        assert page["messages"][-1]["body"] == {"text": "HELLO"}

        # Alice's slow check holds up Alice only: Bob's sends are stored meanwhile.
        slow = asyncio.ensure_future(
            alice.api("POST", "/api/v1/messages", {"cmid": "s1", "to": bob.user_id, "body": {"text": "slow"}})
        )
        await asyncio.sleep(0.1)
        started = time.monotonic()
        await bob.api(
            "POST", "/api/v1/messages", {"cmid": "b1", "to": alice.user_id, "body": {"text": "quick"}}
        )
        assert time.monotonic() - started < 1.0 and not slow.done()
        await slow

        # Past the timeout: fail-open lets it through.
        started = time.monotonic()
        await alice.api(
            "POST", "/api/v1/messages", {"cmid": "t1", "to": bob.user_id, "body": {"text": "too slow"}}
        )
        assert 2.5 < time.monotonic() - started < 4.5
    finally:
        await alice.close()
        await bob.close()


async def test_before_send_hook_fail_closed(make_node):
    node = await make_node(
        before_send_url="http://127.0.0.1:9/nothing-listens",
        before_send_fail_open=False,
        webhook_allow_networks="127.0.0.0/8",
    )
    alice, bob = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await alice.register("fc_alice", "correct-horse-battery")
        await bob.register("fc_bob", "correct-horse-battery")
        await alice.befriend(bob)
        with pytest.raises(ApiError) as closed:
            await alice.api(
                "POST", "/api/v1/messages", {"cmid": "c1", "to": bob.user_id, "body": {"text": "hi"}}
            )
        assert closed.value.code == "unavailable"
    finally:
        await alice.close()
        await bob.close()
