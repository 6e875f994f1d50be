"""A message stored by a node that died before pushing it reaches recipients who stay connected when the
sender resends it (issue 12.5), on a real cluster: node processes over one Redis and one PostgreSQL.

"Stored, then SIGKILLed before publishing" cannot be timed from outside, so the test plays the dead node: it
stores the message straight through the storage engine, as that node's batcher would have, with the cmid
the sender then resends through a socket to a live node. Before the fix the resend got the right ack and
nobody was told; recipients saw the message only when a later one revealed the gap.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from hubbub.client import HubbubClient
from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.engines.storage.sql import SqlStorage
from tests.cluster.clients import MakeClient, client_maker
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def make_client(cluster: Cluster) -> AsyncIterator[MakeClient]:
    async with client_maker(cluster.url, "rp") as make:
        yield make


@pytest.fixture
async def dead_node(cluster: Cluster) -> AsyncIterator[SqlStorage]:
    """The storage engine of a node that stores and then dies: same database, no broker, no pushes."""
    args = cluster.nodes[0].args
    storage = SqlStorage(Config(database=args[args.index("--database") + 1]).database_url)
    yield storage
    await storage.close()


async def store_and_die(storage: SqlStorage, sender: int, conv: str, cmid: str, members: tuple[int, ...]) -> Stored:
    item = NewMessage(
        id=MessageIds("dead-node").next(),
        conv=conv,
        sender=sender,
        cmid=cmid,
        type="text",
        body={"text": "stored, never pushed"},
        ts=now_ms(),
        members=members,
    )
    (result,) = await storage.store_messages([item])
    assert isinstance(result, Stored) and not result.duplicate
    return result


async def wait_pushed(client: HubbubClient, message_id: str) -> dict[str, Any]:
    """The ``msg`` push of ``message_id`` (a push, not a pull: pulls do not go through ``events``)."""
    frame = await client.next_event(
        "msg", timeout=5 * TIMEOUT_FACTOR, where=lambda f: f["msg"]["id"] == message_id
    )
    return frame["msg"]


async def test_a_resend_pushes_a_message_its_dead_node_never_pushed(
    make_client: MakeClient, dead_node: SqlStorage
) -> None:
    alice, bob = await make_client(0), await make_client(1)
    await alice.befriend(bob)
    alice_elsewhere = HubbubClient(bob.base_url, terminal="mobile")  # another terminal of alice, on bob's node
    alice_elsewhere.user, alice_elsewhere.access_token = alice.user, alice.access_token
    alice_elsewhere.refresh_token = alice.refresh_token
    await alice_elsewhere.connect()
    try:
        a, b = sorted((alice.user_id, bob.user_id))
        conv = f"p:{a}:{b}"
        stored = await store_and_die(dead_node, alice.user_id, conv, "crash-1", (a, b))

        ack = await alice.send_text("stored, never pushed", to=bob.user_id, cmid="crash-1")
        assert (ack["id"], ack["seq"]) == (stored.message.id, stored.message.seq)  # the original ack
        msg = await wait_pushed(bob, ack["id"])
        assert (msg["seq"], msg["cmid"], msg["body"]) == (1, "crash-1", {"text": "stored, never pushed"})
        await wait_pushed(alice_elsewhere, ack["id"])  # the sender's other terminals too

        # A resend of a message that was pushed is pushed again; clients drop the seq they hold.
        await alice.send_text("stored, never pushed", to=bob.user_id, cmid="crash-1")
        await wait_pushed(bob, ack["id"])
        assert [m["seq"] for m in bob.history(conv)] == [1]
    finally:
        await alice_elsewhere.close()


async def test_a_resend_into_a_group_pushes_to_its_members(make_client: MakeClient, dead_node: SqlStorage) -> None:
    owner, member, sender = await make_client(0), await make_client(1), await make_client(2)
    await owner.befriend(member)
    await owner.befriend(sender)
    group = await owner.api("POST", "/api/v1/groups", {"name": "r", "members": [member.user_id, sender.user_id]})
    conv = group["conv"]
    stored = await store_and_die(dead_node, sender.user_id, conv, "crash-g", ())

    ack = await sender.send_text("stored, never pushed", conv=conv, cmid="crash-g")
    assert (ack["id"], ack["seq"]) == (stored.message.id, stored.message.seq)
    for client in (owner, member):
        msg = await wait_pushed(client, ack["id"])
        assert msg["seq"] == stored.message.seq
