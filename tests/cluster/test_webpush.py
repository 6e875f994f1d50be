"""Web Push on three real nodes over one Redis and one PostgreSQL (issue 17): every node runs the sender and
any node may store a message, yet an offline recipient gets exactly one push per coalescing window; a
foreground terminal on any node suppresses pushes; a read on another terminal, on another node, clears the
notification. Pushes go to the RFC 8030 service of tests/pushservice.py, which checks and decrypts each."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hubbub.client import HubbubClient
from tests import servers
from tests.cluster.conftest import Cluster, NodeProcess
from tests.pushservice import PushService

pytestmark = pytest.mark.cluster
PASSWORD = "correct-horse-battery"
WINDOW_S = 2.0


@pytest.fixture(scope="module")
def push_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Three nodes, each with its own data directory, sharing the VAPID key through configuration."""
    redis = servers.RedisServer().start()
    pg = servers.PostgresServer().start()
    tmp = tmp_path_factory.mktemp("push-cluster")
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    env = {
        **os.environ,
        "HUBBUB_JWT_SECRET": "cluster-test-secret-" + "x" * 32,
        "HUBBUB_VAPID_PRIVATE_KEY": pem.decode(),
        "HUBBUB_VAPID_SUBJECT": "mailto:ops@hubbub.test",
        "HUBBUB_PUSH_ALLOW_HTTP": "true",
        "HUBBUB_PUSH_WINDOW_S": str(WINDOW_S),
        # Far off: every push here must go because a node woke for it (its own queueing, a read, or the
        # window its send opened), whichever node stored the message, never because a poll came round.
        "HUBBUB_PUSH_POLL_S": "60",
        "HUBBUB_ARGON2_TIME_COST": "1",
        "HUBBUB_ARGON2_MEMORY_KIB": "256",
        "HUBBUB_LOGIN_BURST": "1000",
        "HUBBUB_SEND_BURST": "2000",
        "HUBBUB_LOG_LEVEL": "warning",
    }
    nodes: list[NodeProcess] = []
    try:
        database = pg.create_database("pushcluster")
        for i in (1, 2, 3):
            data = tmp / f"n{i}"
            data.mkdir()
            nodes.append(NodeProcess(f"n{i}", redis.url, database, data, env))
        nodes[0].start()
        for node in nodes[1:]:
            node.start()
        yield Cluster(redis, pg, nodes)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
        pg.destroy()


@pytest.fixture
async def push_service() -> AsyncIterator[PushService]:
    service = PushService()
    await service.start()
    yield service
    await service.close()


@pytest.fixture
async def clients() -> AsyncIterator[list[HubbubClient]]:
    made: list[HubbubClient] = []
    yield made
    for client in made:
        with contextlib.suppress(Exception):
            await client.close()


async def _user(
    cluster: Cluster, clients: list[HubbubClient], node: int, *, connect: bool = True
) -> HubbubClient:
    client = HubbubClient(cluster.url(node), terminal="web")
    clients.append(client)
    await client.register(f"p{uuid.uuid4().hex[:8]}", PASSWORD)
    if connect:
        await client.connect()
    return client


async def _terminal(
    cluster: Cluster, clients: list[HubbubClient], like: HubbubClient, node: int, terminal: str
) -> HubbubClient:
    client = HubbubClient(cluster.url(node), terminal=terminal)
    clients.append(client)
    await client.login(like.user["username"], PASSWORD)
    await client.connect()
    return client


async def test_offline_recipient_gets_one_push_per_window_whichever_node_stores(
    push_cluster: Cluster, push_service: PushService, clients: list[HubbubClient]
) -> None:
    ann1 = await _user(push_cluster, clients, 0)
    bob = await _user(push_cluster, clients, 1, connect=False)
    await ann1.befriend(bob)
    ann3 = await _terminal(push_cluster, clients, ann1, 2, "desktop")
    # Every node hands out the one configured key (and signs with it: the push service checks each push).
    keys = set()
    for node in (0, 1, 2):
        peer = await _terminal(push_cluster, clients, bob, node, "desktop")
        keys.add((await peer.api("GET", "/api/v1/push/key"))["public_key"])
        await peer.close()
    assert len(keys) == 1
    key = keys.pop()
    sub = push_service.subscribe(key)
    await bob.api("POST", "/api/v1/push/devices", sub)
    senders = [ann1, ann3]
    started = asyncio.get_running_loop().time()
    for n in range(12):  # a burst through two nodes, over about two windows
        await senders[n % 2].send_text(f"burst {n}", to=bob.user_id)
        await asyncio.sleep(0.3)
    await asyncio.sleep(WINDOW_S + 1.5)
    pushes = push_service.of(sub["endpoint"])
    elapsed = asyncio.get_running_loop().time() - started
    seqs = [p.payload["seq"] for p in pushes]
    assert seqs == sorted(set(seqs)), f"a message pushed twice: {seqs}"
    assert seqs[-1] == 12 and pushes[-1].payload["count"] == 12 and pushes[-1].payload["body"] == "burst 11"
    gaps = [b.at - a.at for a, b in itertools.pairwise(pushes)]
    assert all(gap >= WINDOW_S - 0.2 for gap in gaps), f"more than one push per window: {gaps}"
    assert len(pushes) <= elapsed / WINDOW_S + 1


async def test_a_foreground_terminal_suppresses_and_a_read_elsewhere_clears(
    push_cluster: Cluster, push_service: PushService, clients: list[HubbubClient]
) -> None:
    ann = await _user(push_cluster, clients, 0)
    bob_web = await _user(push_cluster, clients, 2)  # bob's browser tab, on node 3, in the foreground
    await ann.befriend(bob_web)
    sub = push_service.subscribe((await bob_web.api("GET", "/api/v1/push/key"))["public_key"])
    await bob_web.api("POST", "/api/v1/push/devices", sub)
    ack = await ann.send_text("you are looking", to=bob_web.user_id)
    await asyncio.sleep(1.5)
    assert push_service.of(sub["endpoint"]) == [], "a focused terminal on another node suppresses the push"
    await bob_web.request({"type": "visibility", "state": "background", "rid": "v"})
    ack = await ann.send_text("now you are not", to=bob_web.user_id)
    pushed = await push_service.wait_for(sub["endpoint"], 1)
    assert pushed[0].payload["body"] == "now you are not"
    # Bob reads on his phone, connected to node 2: the tab's notification is closed.
    bob_phone = await _terminal(push_cluster, clients, bob_web, 1, "mobile")
    await bob_phone.request({"type": "visibility", "state": "background", "rid": "v"})
    await bob_phone.request({"type": "read", "conv": ack["conv"], "seq": ack["seq"], "rid": "r"})
    pushes = await push_service.wait_for(sub["endpoint"], 2)
    assert pushes[1].payload == {"type": "clear", "conv": ack["conv"], "tag": f"conv:{ack['conv']}"}
    await asyncio.sleep(1.0)
    assert len(push_service.of(sub["endpoint"])) == 2, "exactly one clear, from one node"
