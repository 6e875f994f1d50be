"""Hot groups across real node processes over one Redis and one PostgreSQL (issue 12.1 and 12.2).

- a member's two terminals on two nodes each get every ``news`` signal;
- after a group stops being hot, a member who left cannot pull on any node, and one invited after the switch
  can;
- a recall made on a node that just restarted (so knows nothing of the group) still blanks the copy of the
  message in the shared Redis cache that the other nodes serve pulls from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError
from tests.cluster.clients import MakeClient, client_maker
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def make_client(cluster: Cluster) -> AsyncIterator[MakeClient]:
    async with client_maker(cluster.url, "h") as make:
        yield make


async def hot_group(owner: HubbubClient, members: list[HubbubClient]) -> dict[str, Any]:
    for member in members:
        await owner.befriend(member)
    group = await owner.api(
        "POST", "/api/v1/groups", {"name": "hot", "members": [m.user_id for m in members]}
    )
    marked = await owner.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    assert marked["push_pull"] is True
    return marked


async def pull(client: HubbubClient, conv: str, after_seq: int = 0) -> list[dict[str, Any]]:
    page = await client.request({"type": "pull", "conv": conv, "after_seq": after_seq, "limit": 200})
    return list(page["messages"])


async def test_both_terminals_of_a_member_on_two_nodes_get_every_signal(make_client: MakeClient) -> None:
    owner = await make_client(0)
    web = await make_client(0)
    phone = await make_client(1, terminal="mobile", like=web)
    group = await hot_group(owner, [web])
    conv = group["conv"]
    for i in range(3):
        ack = await owner.send_text(f"m{i}", conv=conv)
        for terminal in (web, phone):
            signal = await terminal.next_event(
                "news",
                where=lambda f, s=ack["seq"]: f["conv"] == conv and f["seq"] >= s,
                timeout=5 * TIMEOUT_FACTOR,
            )
            assert signal["seq"] >= ack["seq"]
    for terminal in (web, phone):
        await terminal.wait_until(
            lambda t=terminal: "m2" in [m["body"].get("text") for m in t.history(conv)], timeout=5
        )


async def test_membership_after_a_group_stops_being_hot_on_every_node(make_client: MakeClient) -> None:
    owner = await make_client(0)
    kicked = await make_client(1)
    stays = await make_client(2)
    group = await hot_group(owner, [kicked, stays])
    gid, conv = group["id"], group["conv"]
    await owner.send_text("while hot", conv=conv)
    for member in (kicked, stays):  # nodes 2 and 3 signalled them, so each read the roster
        await member.next_event("news", where=lambda f: f["conv"] == conv, timeout=5 * TIMEOUT_FACTOR)
    assert "while hot" in [m["body"].get("text") for m in await pull(kicked, conv)]

    await owner.api("PATCH", f"/api/v1/groups/{gid}", {"hot": False})
    await owner.api("DELETE", f"/api/v1/groups/{gid}/members/{kicked.user_id}")
    await owner.send_text("after the kick", conv=conv)
    await stays.next_event("msg", where=lambda f: f["msg"]["conv"] == conv, timeout=5 * TIMEOUT_FACTOR)
    for node in (1, 2, 0):  # the node that read the roster, another that did, and the one that changed it
        # (each login on "mobile" replaces the previous one: a fresh connection on each node)
        elsewhere = await make_client(node, terminal="mobile", like=kicked)
        with pytest.raises(ApiError) as refused:
            await pull(elsewhere, conv)
        assert refused.value.code == "forbidden"

    late = await make_client(2)
    await owner.befriend(late)
    await owner.api("POST", f"/api/v1/groups/{gid}/members", {"users": [late.user_id]})
    await owner.send_text("welcome", conv=conv)
    for node in (1, 2):
        reader = await make_client(node, terminal="mobile", like=late)
        assert "welcome" in [m["body"].get("text") for m in await pull(reader, conv)]


async def test_recall_on_a_restarted_node_blanks_the_shared_cache(
    cluster: Cluster, make_client: MakeClient
) -> None:
    owner = await make_client(0)
    member = await make_client(1)
    group = await hot_group(owner, [member])
    conv = group["conv"]
    ack = await owner.send_text("oops, a secret", conv=conv)
    await member.wait_until(
        lambda: "oops, a secret" in [m["body"].get("text") for m in member.history(conv)], timeout=5
    )

    owner.auto_reconnect = False
    await owner.disconnect()
    cluster.nodes[0].stop()
    cluster.nodes[0].start()  # knows nothing of the group now; the cache in Redis still holds the message
    fresh_owner = await make_client(0, terminal="desktop", like=owner)
    await fresh_owner.api("POST", f"/api/v1/conversations/{conv}/messages/{ack['seq']}/recall")

    for node in (1, 0):  # node 2 serves pulls from the cache; node 1 reads the roster on the recall's news
        # No sync on connect: pull from just before the message, as a member signalled of it does, a range
        # the cache holds (seq 1 is not cached, the group was not hot yet: a pull from 0 reads the database).
        reader = await make_client(node, terminal="mobile", like=member, sync=False)
        messages = await pull(reader, conv, ack["seq"] - 1)
        recalled = [m for m in messages if m["seq"] == ack["seq"]]
        assert recalled[0]["recalled"] is True and recalled[0]["body"] == {}, recalled
        assert "secret" not in str(messages)
