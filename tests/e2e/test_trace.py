"""Per-message tracing on one node, through real sockets: an admin asks where a message went and gets its
timeline (received, stored, published, delivered to the peer's terminals, pulled, read) without its body;
by id or by sender + cmid; others are refused; bad queries get a clear error."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError
from hubbub.node import Node

MakeClient = Callable[..., Awaitable[HubbubClient]]


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[Node]]) -> Node:
    """Every message traced (the default traces a tenth of them, chosen by id)."""
    return await make_node(trace_sample=1.0)


async def test_an_admin_traces_a_private_message(node: Node, make_client: MakeClient) -> None:
    admin = await make_client()  # the first account is the server's administrator
    alice = await make_client()
    bob = await make_client()
    await alice.befriend(bob)
    ack = await alice.send_text("the body stays private", to=bob.user_id, cmid="trace-1")
    await bob.next_event("msg", where=lambda f: f["msg"]["id"] == ack["id"])
    await bob.request({"type": "pull", "conv": ack["conv"], "after_seq": 0, "limit": 10})
    await bob.api("POST", f"/api/v1/conversations/{ack['conv']}/read", {"seq": ack["seq"]})

    found = await admin.api("GET", "/api/v1/admin/trace", id=ack["id"])
    assert (found["message"], found["conv"], found["seq"], found["sender"]) == (
        ack["id"], ack["conv"], ack["seq"], alice.user_id,
    )  # fmt: skip
    steps = {s["step"]: s for s in found["steps"]}
    assert list(steps) == ["received", "stored", "published", "delivered", "pulled", "read"]
    assert steps["stored"]["seq"] == ack["seq"] and steps["stored"]["node"] == "test"
    assert sorted(steps["published"]["users"]) == sorted([alice.user_id, bob.user_id])
    # The push went to bob's terminal, not back to alice's sending socket.
    assert steps["delivered"]["terminals"] == [f"{bob.user_id}/web"]
    assert steps["pulled"]["user"] == bob.user_id and steps["read"]["user"] == bob.user_id
    assert "the body stays private" not in str(found)

    by_key = await admin.api("GET", "/api/v1/admin/trace", sender=alice.user_id, cmid="trace-1")
    assert by_key["message"] == ack["id"]


async def test_tracing_is_for_admins_and_checks_its_query(node: Node, make_client: MakeClient) -> None:
    admin = await make_client()
    someone = await make_client()
    with pytest.raises(ApiError) as refused:
        await someone.api("GET", "/api/v1/admin/trace", id="1")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    for query in ({}, {"sender": "5"}, {"id": "abc"}, {"id": "-1"}):
        with pytest.raises(ApiError) as bad:
            await admin.api("GET", "/api/v1/admin/trace", **query)
        assert bad.value.status in (400, 422), query  # invalid_id, invalid_field
    with pytest.raises(ApiError) as unknown:
        await admin.api("GET", "/api/v1/admin/trace", id="123456789")
    assert (unknown.value.status, unknown.value.code) == (404, "not_found")


async def test_sampling_zero_traces_nothing(make_node: Callable[..., Awaitable[Node]]) -> None:
    node = await make_node(trace_sample=0.0)
    url = f"http://127.0.0.1:{node.port}"
    async with HubbubClient(url) as admin, HubbubClient(url) as alice, HubbubClient(url) as bob:
        for c, name in ((admin, "admin0"), (alice, "alice0"), (bob, "bob0")):
            await c.register(name, "correct-horse-battery")
        await alice.befriend(bob)
        await alice.connect()
        ack = await alice.send_text("hi", to=bob.user_id)
        with pytest.raises(ApiError) as none:
            await admin.api("GET", "/api/v1/admin/trace", id=ack["id"])
        assert none.value.status == 404
