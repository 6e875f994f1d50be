"""Issue 15 across nodes: one user's devices on different nodes are all live and all receive; past the cap
the idlest session is evicted (4410) wherever it is; a block made on one node is refused on another."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.protocol.close_codes import Close
from tests.cluster.conftest import Cluster

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


async def first_refusal(sender: HubbubClient, to: int, within: float) -> str:
    """Send until refused; the refusal's code. The broadcast travels beside the client's own frames, so on a
    loaded machine the first send may win that race by a hair: a few more tries, all well inside ``within``
    (less than the cache's TTL, so only the broadcast can explain the refusal)."""
    deadline = time.monotonic() + within
    while True:
        frame = {"type": "send", "cmid": uuid.uuid4().hex, "to": to, "msg_type": "text", "body": {"text": "no"}}
        try:
            await sender.request(frame)
        except ApiError as exc:
            return exc.code
        assert time.monotonic() < deadline, "the block did not reach the sender's node in time"
        await asyncio.sleep(0.02)


async def test_devices_on_several_nodes(cluster: Cluster) -> None:
    name = f"ms{uuid.uuid4().hex[:8]}"
    alice = HubbubClient(cluster.url(0), device="dev-0")
    bob = HubbubClient(cluster.url(2))
    made = [alice, bob]
    try:
        await alice.register(name, PASSWORD)
        await bob.register(f"mb{uuid.uuid4().hex[:8]}", PASSWORD)
        await alice.connect()
        await bob.connect()
        await alice.befriend(bob)
        second = HubbubClient(cluster.url(1), device="dev-1")
        made.append(second)
        await second.login(name, PASSWORD)
        await second.connect()

        # both devices, on two nodes, receive bob's message and alice's rename is seen by bob
        await bob.send_text("to every device", to=alice.user_id)
        for device in (alice, second):
            pushed = await device.next_event("msg", where=lambda f: f["msg"]["body"].get("text") == "to every device")
            assert pushed["msg"]["sender"] == bob.user_id
        await second.api("PATCH", "/api/v1/me", {"nickname": "Alice Everywhere"})
        renamed = await bob.next_event("profile", where=lambda p: p["user"]["id"] == alice.user_id)
        assert renamed["user"]["nickname"] == "Alice Everywhere"
        assert (await alice.next_event("profile"))["user"]["nickname"] == "Alice Everywhere"

        # fill the cap (10) from the third node: the 11th login evicts the idlest, dev-0 on node 1
        for i in range(2, 11):
            extra = HubbubClient(cluster.url(2), device=f"dev-{i}")
            made.append(extra)
            await extra.login(name, PASSWORD)
            await extra.connect(sync=False)
        await alice.wait_until(lambda: alice.close_code == Close.EVICTED)
        assert second.close_code is None
        await second.request({"type": "ping"})
        friends = (await bob.api("GET", "/api/v1/friends"))["friends"]
        assert friends[0]["online"] is True

        # a block made through node 2 is refused to a sender on node 3 at once: node 3 has just asked (and
        # cached "no" for a minute), and drops that answer when node 2's broadcast arrives
        await bob.send_text("just before the block", to=alice.user_id)
        asked = time.monotonic()
        await second.api("PUT", f"/api/v1/blocks/{bob.user_id}")
        code = await first_refusal(bob, alice.user_id, within=1.0)
        assert code == "blocked" and time.monotonic() - asked < 2.0
    finally:
        for client in made:
            await client.close()
