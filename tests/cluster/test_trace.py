"""Per-message tracing across a cluster (3 node processes, one Redis): a message sent on n1 to a user online
on n2 and n3 is traced by an admin asking n3: received and stored on n1, delivered by n2 and by n3 to the
terminals there, then pulled and read on another node. A hot group's message is published push-pull and its
members' pulls appear."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from hubbub.client import HubbubClient
from tests.cluster.clients import MakeClient, client_maker
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module", autouse=True)
def trace_everything() -> Iterator[None]:
    """The nodes of this module trace every message (the default traces a tenth, chosen by id)."""
    old = os.environ.get("HUBBUB_TRACE_SAMPLE")
    os.environ["HUBBUB_TRACE_SAMPLE"] = "1"
    yield
    if old is None:
        del os.environ["HUBBUB_TRACE_SAMPLE"]
    else:
        os.environ["HUBBUB_TRACE_SAMPLE"] = old


@pytest.fixture
async def make_client(cluster: Cluster) -> AsyncIterator[MakeClient]:
    async with client_maker(cluster.url, "t") as make:
        yield make


async def trace_until(
    admin: HubbubClient, message_id: str, done: Callable[[list[Any]], bool]
) -> dict[str, Any]:
    """Steps reach Redis within a flush interval of each node: ask until the timeline is complete."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * TIMEOUT_FACTOR
    while True:
        found: dict[str, Any] = await admin.api("GET", "/api/v1/admin/trace", id=message_id)
        if done(found["steps"]) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_a_message_traced_across_nodes(make_client: MakeClient) -> None:
    admin = await make_client(2)  # the first account of this cluster's database: the administrator
    alice = await make_client(0)
    bob = await make_client(1)
    bob_phone = await make_client(2, terminal="mobile", like=bob)
    await alice.befriend(bob)
    ack = await alice.send_text("not in the trace", to=bob.user_id)
    for terminal in (bob, bob_phone):
        await terminal.wait_until(
            lambda t=terminal: ack["conv"] in t.convs and ack["seq"] in t.convs[ack["conv"]].messages  # type: ignore[misc]
        )
    await bob_phone.request({"type": "pull", "conv": ack["conv"], "after_seq": 0, "limit": 10})
    await bob_phone.request({"type": "read", "conv": ack["conv"], "seq": ack["seq"]})

    def complete(steps: list[Any]) -> bool:
        """Every node flushes its steps on its own timer: wait for each step asserted below, not a count."""
        kinds = [s["step"] for s in steps]
        delivered_on = {s["node"] for s in steps if s["step"] == "delivered" and s["terminals"]}
        pulled_on = {s["node"] for s in steps if s["step"] == "pulled"}
        return delivered_on >= {"n2", "n3"} and "n3" in pulled_on and "read" in kinds

    found = await trace_until(admin, ack["id"], complete)
    steps = found["steps"]
    by_step = {s["step"]: s for s in steps}
    assert by_step["received"]["node"] == "n1" and by_step["stored"]["node"] == "n1"
    assert by_step["stored"]["seq"] == ack["seq"]
    delivered = {s["node"]: s["terminals"] for s in steps if s["step"] == "delivered" and s["terminals"]}
    assert delivered == {"n2": [f"{bob.user_id}/web"], "n3": [f"{bob.user_id}/mobile"]}, steps
    assert any(s["step"] == "pulled" and s["node"] == "n3" for s in steps), steps
    assert by_step["read"]["user"] == bob.user_id
    assert "not in the trace" not in str(found)
    # Any node answers, by sender and cmid too.
    again = await admin.api("GET", "/api/v1/admin/trace", sender=alice.user_id, cmid=ack["cmid"])
    assert again["message"] == ack["id"]

    # A hot group: published push-pull (members are signalled), and the member's pull on n2 is in the trace.
    group = await alice.api("POST", "/api/v1/groups", {"name": "hot", "members": [bob.user_id]})
    await alice.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    hot = await alice.send_text("hot", conv=group["conv"])
    await bob.wait_until(
        lambda: group["conv"] in bob.convs and hot["seq"] in bob.convs[group["conv"]].messages
    )

    def bob_pulled(steps: list[Any]) -> bool:
        """The sender's own pull may reach the trace first: wait for bob's."""
        return any(s["step"] == "pulled" and s["user"] == bob.user_id for s in steps)

    found = await trace_until(admin, hot["id"], bob_pulled)
    by_step = {s["step"]: s for s in found["steps"]}
    assert by_step["published"]["mode"] == "push-pull"
    pulls = {(s["user"], s["node"]) for s in found["steps"] if s["step"] == "pulled"}
    # bob's web (n2) or mobile (n3) terminal pulled it (the sender's terminals may pull too: they hear the news)
    assert pulls & {(bob.user_id, "n2"), (bob.user_id, "n3")}, pulls
