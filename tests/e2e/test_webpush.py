"""Web Push end to end: a real node pushes to the RFC 8030 push service of tests/pushservice.py, which checks
the VAPID JWT and decrypts every payload with the subscription's private key."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError
from hubbub.node import Node
from tests.conftest import friends
from tests.pushservice import PushService

PUSH = {"push_allow_http": True, "push_window_s": 1.0, "push_poll_s": 0.2, "push_retry_base_s": 0.2}


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    yield service
    await service.close()


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[Node]], request: pytest.FixtureRequest) -> Node:
    """A node with PUSH's settings (and a test's own, given as the indirect parameter ``node``)."""
    return await make_node(**{**PUSH, **getattr(request, "param", {})})


async def subscribe(client: HubbubClient, push: PushService, **extra: Any) -> dict[str, Any]:
    key = await client.api("GET", "/api/v1/push/key")
    sub = push.subscribe(key["public_key"])
    device = await client.api("POST", "/api/v1/push/devices", {**sub, "label": "test browser", **extra})
    return {**sub, "id": device["id"]}


async def test_an_offline_user_gets_one_coalesced_push_per_window(make_client, push_service) -> None:
    ann, bob = await make_client("ann"), await make_client("bob")
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    await bob.close()  # the app is closed
    await asyncio.sleep(0.1)
    await ann.send_text(to=bob.user_id, text="first")
    first = await push_service.wait_for(sub["endpoint"], 1)
    for n in range(3):
        await ann.send_text(to=bob.user_id, text=f"more {n}")
    pushes = await push_service.wait_for(sub["endpoint"], 2)
    await asyncio.sleep(1.5)
    assert len(push_service.of(sub["endpoint"])) == 2, "a burst within the window is one push"
    one, two = first[0].payload, pushes[1].payload
    conv = f"p:{min(ann.user_id, bob.user_id)}:{max(ann.user_id, bob.user_id)}"
    assert one == {
        "type": "msg",
        "conv": conv,
        "seq": 1,
        "count": 1,
        "tag": f"conv:{conv}",
        "title": "ann",
        "mention": False,
        "body": "first",
    }
    assert (two["seq"], two["count"], two["body"]) == (4, 4, "more 2")
    assert pushes[1].at - first[0].at >= 0.9, "at most one push per conversation per window"
    headers = pushes[1].headers
    assert headers["Urgency"] == "high" and int(headers["TTL"]) > 0 and len(headers["Topic"]) <= 32


@pytest.mark.parametrize("node", [{"push_poll_s": 60.0}], indirect=True)
async def test_the_worker_wakes_when_a_push_is_due_not_on_its_poll(make_client, push_service) -> None:
    """With the safety-net poll a minute away, each push still goes when it is due: the first at once (queueing
    it wakes the worker), the coalesced one as the window its send opened ends and a retry as its backoff
    ends (timers the send set). Seconds here would mean the poll did the work."""
    ann, bob = await make_client("ann"), await make_client("bob", connect=False)
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    held = push_service.subscriptions[sub["endpoint"].rsplit("/", 1)[1]]
    sent = time.monotonic()
    await ann.send_text(to=bob.user_id, text="first")
    first = (await push_service.wait_for(sub["endpoint"], 1, timeout=5))[0]
    assert first.at - sent < 1.0
    await ann.send_text(to=bob.user_id, text="within the window")
    second = (await push_service.wait_for(sub["endpoint"], 2, timeout=5))[1]
    assert 0.9 <= second.at - first.at < 1.6, "sent as the 1 s window ends"
    await asyncio.sleep(1.2)  # past the window again
    held.failures.append((503, None))
    sent = time.monotonic()
    await ann.send_text(to=bob.user_id, text="retried")
    third = (await push_service.wait_for(sub["endpoint"], 3, timeout=5))[2]
    assert third.payload["body"] == "retried" and third.at - sent < 1.5  # a retry after ~0.2 s
    assert [s for sid, s, _ in push_service.refused if sid == held.id] == [503]


async def test_a_foreground_terminal_suppresses_and_a_background_one_does_not(
    make_client, push_service
) -> None:
    ann, bob = await make_client("ann"), await make_client("bob")
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    await ann.send_text(to=bob.user_id, text="you are looking")
    await asyncio.sleep(1.0)
    assert push_service.of(sub["endpoint"]) == []
    await bob.request({"type": "visibility", "state": "background"})
    await ann.send_text(to=bob.user_id, text="now you are not")
    pushes = await push_service.wait_for(sub["endpoint"], 1)
    assert pushes[0].payload["body"] == "now you are not"
    await bob.request({"type": "visibility", "state": "foreground"})
    await asyncio.sleep(1.2)
    await ann.send_text(to=bob.user_id, text="back again")
    await asyncio.sleep(1.0)
    assert len(push_service.of(sub["endpoint"])) == 1


async def test_a_read_on_another_terminal_clears_the_notification(make_client, push_service) -> None:
    ann, bob = await make_client("ann"), await make_client("bob", connect=False)
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    ack = await ann.send_text(to=bob.user_id, text="read me elsewhere")
    await push_service.wait_for(sub["endpoint"], 1)
    await bob.connect()
    await bob.request({"type": "read", "conv": ack["conv"], "seq": ack["seq"]})
    pushes = await push_service.wait_for(sub["endpoint"], 2)
    assert pushes[1].payload == {"type": "clear", "conv": ack["conv"], "tag": f"conv:{ack['conv']}"}
    assert pushes[1].headers["Urgency"] == "low"


async def test_privacy_settings_hide_the_text_or_everything(make_client, push_service) -> None:
    ann, bob = await make_client("ann"), await make_client("bob", connect=False)
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    prefs = await bob.api("PUT", "/api/v1/push/prefs", {"preview": "sender"})
    assert prefs == {"preview": "sender", "mentions_through_mute": True, "hot_groups": "mentions"}
    ack = await ann.send_text(to=bob.user_id, text="secret")
    pushed = (await push_service.wait_for(sub["endpoint"], 1))[0].payload
    assert "body" not in pushed and pushed["title"] == "ann" and "secret" not in str(pushed)
    await bob.api("PUT", "/api/v1/push/prefs", {"preview": "none"})
    await asyncio.sleep(1.1)
    await ann.send_text(to=bob.user_id, text="more secret")
    assert (await push_service.wait_for(sub["endpoint"], 2))[1].payload == {"type": "wake"}
    # The service worker then asks this server, with the endpoint only it knows.
    woke = await bob.api("POST", "/api/v1/push/wake", {"endpoint": sub["endpoint"]}, auth=False)
    assert (
        woke["notifications"][0]["body"] == "more secret" and woke["notifications"][0]["conv"] == ack["conv"]
    )
    with pytest.raises(ApiError) as refused:
        await bob.api("POST", "/api/v1/push/wake", {"endpoint": "https://push.invalid/nothing"}, auth=False)
    assert refused.value.status == 404


async def test_retries_on_5xx_and_429_honour_retry_after_and_gone_devices_go(
    make_client, push_service
) -> None:
    ann, bob = await make_client("ann"), await make_client("bob", connect=False)
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    held = push_service.subscriptions[sub["endpoint"].rsplit("/", 1)[1]]
    held.failures.extend([(503, None), (429, "1")])
    await ann.send_text(to=bob.user_id, text="eventually")
    pushes = await push_service.wait_for(sub["endpoint"], 1, timeout=15)
    assert pushes[0].payload["body"] == "eventually"
    statuses = [s for sid, s, _ in push_service.refused if sid == held.id]
    assert statuses == [503, 429]
    held.gone = True
    await asyncio.sleep(1.1)
    await ann.send_text(to=bob.user_id, text="nobody home")
    for _ in range(50):
        if not (await bob.api("GET", "/api/v1/push/devices"))["devices"]:
            break
        await asyncio.sleep(0.1)
    assert (await bob.api("GET", "/api/v1/push/devices"))["devices"] == []


async def test_devices_are_listed_revoked_and_end_with_the_session(make_client, push_service) -> None:
    bob = await make_client("bob", connect=False)
    sub = await subscribe(bob, push_service)
    listed = (await bob.api("GET", "/api/v1/push/devices"))["devices"]
    assert [(d["id"], d["label"], d["current"]) for d in listed] == [(sub["id"], "test browser", True)]
    with pytest.raises(ApiError) as bad:
        await bob.api(
            "POST", "/api/v1/push/devices", {"endpoint": "https://x.test/1", "keys": {"p256dh": "x"}}
        )
    assert bad.value.status == 422
    await bob.api("DELETE", f"/api/v1/push/devices/{sub['id']}")
    with pytest.raises(ApiError) as gone:
        await bob.api("DELETE", f"/api/v1/push/devices/{sub['id']}")
    assert gone.value.status == 404
    await subscribe(bob, push_service)
    await bob.api("POST", "/api/v1/auth/logout", {"refresh_token": bob.refresh_token})
    await bob.login("bob", "correct-horse-battery")
    assert (await bob.api("GET", "/api/v1/push/devices"))["devices"] == []


async def test_group_rules_dnd_mentions_and_sender(make_client, push_service) -> None:
    ann, bob, cat = (
        await make_client("ann"),
        await make_client("bob", connect=False),
        await make_client("cat", connect=False),
    )
    await friends(ann, bob, cat)
    group = await ann.api("POST", "/api/v1/groups", {"name": "crew", "members": [bob.user_id, cat.user_id]})
    conv = f"g:{group['id']}"
    bob_sub, cat_sub = await subscribe(bob, push_service), await subscribe(cat, push_service)
    ann_sub = await subscribe(ann, push_service)
    await bob.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"dnd": True})
    await ann.send_text("hello all", conv=conv)
    await push_service.wait_for(cat_sub["endpoint"], 1)
    await asyncio.sleep(0.5)
    assert push_service.of(bob_sub["endpoint"]) == [], "do-not-disturb holds plain messages back"
    assert push_service.of(ann_sub["endpoint"]) == [], "nobody is pushed their own message"
    await ann.send({"msg_type": "text", "body": {"text": "@bob look", "mentions": [bob.user_id]}}, conv=conv)
    got = await push_service.wait_for(bob_sub["endpoint"], 1)
    assert got[0].payload["mention"] is True and got[0].payload["title"] == "ann (crew)"


async def test_hot_groups_push_only_mentions_unless_asked_and_mute_can_hold_mentions(
    make_node, push_service
) -> None:
    node = await make_node(hot_group_threshold=3, **PUSH)
    from tests.conftest import base_url

    made: list[HubbubClient] = []

    async def user(name: str) -> HubbubClient:
        client = HubbubClient(base_url(node))
        made.append(client)
        await client.register(name, "correct-horse-battery")
        return client

    try:
        ann, bob, cat = await user("ann"), await user("bob"), await user("cat")
        await ann.connect()
        await friends(ann, bob, cat)
        group = await ann.api(
            "POST", "/api/v1/groups", {"name": "town", "members": [bob.user_id, cat.user_id]}
        )
        conv = f"g:{group['id']}"
        bob_sub, cat_sub = await subscribe(bob, push_service), await subscribe(cat, push_service)
        await cat.api("PUT", "/api/v1/push/prefs", {"hot_groups": "all"})
        await ann.send_text("plain news", conv=conv)
        await push_service.wait_for(cat_sub["endpoint"], 1)  # cat asked for everything
        await asyncio.sleep(0.5)
        assert push_service.of(bob_sub["endpoint"]) == [], "a hot group pushes only mentions by default"
        mention = {"msg_type": "text", "body": {"text": "@bob", "mentions": [bob.user_id]}}
        await ann.send(mention, conv=conv)
        assert (await push_service.wait_for(bob_sub["endpoint"], 1))[0].payload["mention"] is True
        # Bob mutes the group and no longer lets mentions through.
        await bob.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"dnd": True})
        await bob.api("PUT", "/api/v1/push/prefs", {"mentions_through_mute": False})
        await asyncio.sleep(1.1)
        await ann.send(mention, conv=conv)
        await asyncio.sleep(1.0)
        assert len(push_service.of(bob_sub["endpoint"])) == 1
    finally:
        for client in made:
            await client.close()


async def test_fcm_sender_against_a_local_fake_endpoint(make_node, aiohttp_fcm) -> None:
    """FCM HTTP v1 for native apps, against a fake of its one endpoint (never Google): the registration
    token, the data payload, the collapse key; UNREGISTERED (404) deletes the device."""
    fake_url, received = aiohttp_fcm
    node = await make_node(fcm_project="demo-project", fcm_access_token="token-123", fcm_url=fake_url, **PUSH)
    from tests.conftest import base_url

    ann, bob = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    try:
        await ann.register("ann", "correct-horse-battery")
        await bob.register("bob", "correct-horse-battery")
        await ann.connect()
        await friends(ann, bob)
        key = await bob.api("GET", "/api/v1/push/key")
        assert key["kinds"] == ["fcm", "webpush"]
        await bob.api("POST", "/api/v1/push/devices", {"endpoint": "fcm-registration-token", "kind": "fcm"})
        await ann.send_text("to the phone", to=bob.user_id)
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.05)
        path, auth, message = received[0]
        assert path == "/v1/projects/demo-project/messages:send" and auth == "Bearer token-123"
        assert message["message"]["token"] == "fcm-registration-token"
        data = json.loads(message["message"]["data"]["payload"])
        assert data["body"] == "to the phone" and message["message"]["android"]["priority"] == "HIGH"
        # The fake now answers UNREGISTERED: the device goes.
        received.clear()
        received.append(("unregistered", "", {}))
        await asyncio.sleep(1.1)
        await ann.send_text("gone?", to=bob.user_id)
        for _ in range(100):
            if not (await bob.api("GET", "/api/v1/push/devices"))["devices"]:
                break
            await asyncio.sleep(0.05)
        assert (await bob.api("GET", "/api/v1/push/devices"))["devices"] == []
    finally:
        await ann.close()
        await bob.close()


@pytest.fixture
async def aiohttp_fcm() -> AsyncIterator[tuple[str, list[tuple[str, str, Any]]]]:
    """A fake FCM HTTP v1 endpoint on a local port: records each send; answers 404 UNREGISTERED once told."""
    from aiohttp import web

    received: list[tuple[str, str, Any]] = []

    async def send(request: web.Request) -> web.Response:
        if received and received[0][0] == "unregistered":
            return web.json_response(
                {"error": {"code": 404, "status": "NOT_FOUND", "details": [{"errorCode": "UNREGISTERED"}]}},
                status=404,
            )
        received.append((request.path, request.headers.get("Authorization", ""), await request.json()))
        return web.json_response({"name": "projects/demo-project/messages/1"})

    app = web.Application()
    app.router.add_post("/v1/projects/{project}/messages:send", send)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    await runner.cleanup()


async def test_a_call_to_a_closed_app_is_pushed_at_once(make_client, push_service) -> None:
    ann, bob = await make_client("ann"), await make_client("bob", connect=False)
    await friends(ann, bob)
    sub = await subscribe(bob, push_service)
    invited = await ann.request({"type": "call_invite", "to": bob.user_id, "media": "video"})
    pushed = (await push_service.wait_for(sub["endpoint"], 1))[0]
    conv = f"p:{min(ann.user_id, bob.user_id)}:{max(ann.user_id, bob.user_id)}"
    assert pushed.payload == {
        "type": "call",
        "call": invited["call"]["id"],
        "conv": conv,
        "media": "video",
        "tag": "call",
        "title": "ann",
    }
    assert pushed.headers["Urgency"] == "high" and pushed.headers["TTL"] == "45"
