"""Message actions across real node processes over one Redis and one PostgreSQL (issue 14): an edit or a
reaction made on node A reaches terminals on node B (pushed in a normal group, signalled and pulled in a hot
one), and a terminal that was offline converges after its sync."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub.client import HubbubClient
from tests.cluster.clients import MakeClient, client_maker
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def make_client(cluster: Cluster) -> AsyncIterator[MakeClient]:
    async with client_maker(cluster.url, "a") as make:
        yield make



def held(client: HubbubClient, conv: str, seq: int) -> dict[str, Any] | None:
    return next((m for m in client.history(conv) if m["seq"] == seq), None)


@pytest.mark.parametrize("hot", [False, True], ids=["pushed", "push-pull"])
async def test_edit_and_reaction_on_node_a_reach_node_b_and_offline_terminals_converge(
    make_client: MakeClient, hot: bool
) -> None:
    wait = 10 * TIMEOUT_FACTOR
    alice = await make_client(0)
    bob = await make_client(1)
    bob_phone = await make_client(2, terminal="mobile", like=bob)
    await alice.befriend(bob)
    group = await alice.api("POST", "/api/v1/groups", {"name": "actions", "members": [bob.user_id]})
    conv = group["conv"]
    if hot:
        await alice.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    sent = await alice.send_text("draft", conv=conv)
    seq = sent["seq"]
    await bob.wait_until(lambda: held(bob, conv, seq) is not None, wait)
    await bob_phone.disconnect()  # offline while the actions happen

    # (An edit racing an indexer pass on another node once failed with "internal": tests/contract/test_search.py.)
    await alice.request({"type": "edit", "aid": uuid.uuid4().hex, "conv": conv, "seq": seq, "text": "final"})
    await bob.request({"type": "react", "conv": conv, "seq": seq, "emoji": "👍"})  # on node B
    await alice.request({"type": "react", "conv": conv, "seq": seq, "emoji": "👍"})  # on node A

    def converged(client: HubbubClient) -> bool:
        message = held(client, conv, seq)
        if message is None or message["body"].get("text") != "final":
            return False
        reactions = message["body"].get("reactions", [])
        return bool(reactions) and reactions[0]["count"] == 2

    await bob.wait_until(lambda: converged(bob), wait)
    await alice.wait_until(lambda: converged(alice), wait)
    events = [m["type"] for m in bob.history(conv) if m["seq"] > seq]
    assert events == ["edit", "reaction", "reaction"]

    # The phone comes back on node C: its sync replays the events in seq order.
    await bob_phone.connect()
    await bob_phone.wait_until(lambda: converged(bob_phone), wait)
    # A fresh terminal that never held the message reads it as it is now.
    fresh = await make_client(2, terminal="desktop", like=bob)
    message = held(fresh, conv, seq)
    assert message is not None and message["body"]["text"] == "final" and message["body"]["edited"]
    assert message["body"]["reactions"] == [
        {"emoji": "👍", "count": 2, "users": [bob.user_id, alice.user_id]}
    ]
    history = await fresh.api("GET", f"/api/v1/conversations/{conv}/messages/{seq}/edits")
    assert [v["text"] for v in history["edits"]] == ["draft", "final"]


async def test_delete_for_me_reaches_my_terminal_on_another_node(make_client: MakeClient) -> None:
    wait = 10 * TIMEOUT_FACTOR
    alice = await make_client(0)
    bob = await make_client(1)
    bob_phone = await make_client(2, terminal="mobile", like=bob)
    await alice.befriend(bob)
    x, y = sorted((alice.user_id, bob.user_id))
    conv = f"p:{x}:{y}"
    sent = await alice.send_text("oops", conv=conv)
    await bob_phone.wait_until(lambda: held(bob_phone, conv, sent["seq"]) is not None, wait)
    await bob.request({"type": "hide", "conv": conv, "seqs": [sent["seq"]]})
    await bob_phone.wait_until(lambda: held(bob_phone, conv, sent["seq"])["body"] == {"hidden": True}, wait)  # type: ignore[index]
    assert held(alice, conv, sent["seq"])["body"] == {"text": "oops"}  # type: ignore[index]
