"""Two node processes on a real Redis Cluster (three masters) and PostgreSQL (issue 19, target 5): messages and
presence cross nodes, and a node killed takes its users offline by its lease alone (no per-user renewals),
while what is sent to them is stored and reaches them by sync."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hubbub.client import HubbubClient
from tests import servers
from tests.cluster.conftest import TIMEOUT_FACTOR, NodeProcess
from tests.cluster.test_cluster import sync_when_connected

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[NodeProcess]]:
    redis = servers.acquire_redis_cluster()
    pg = servers.PostgresServer().start()
    tmp: Path = tmp_path_factory.mktemp("rediscluster")
    env = {
        **os.environ,
        "HUBBUB_JWT_SECRET": "cluster-test-secret-" + "x" * 32,
        "HUBBUB_ARGON2_TIME_COST": "1",
        "HUBBUB_ARGON2_MEMORY_KIB": "256",
        "HUBBUB_LOG_LEVEL": "warning",
    }
    made: list[NodeProcess] = []
    try:
        database = pg.create_database("rc")
        made = [NodeProcess(f"rc{i}", redis.url, database, tmp, env) for i in (1, 2)]
        made[0].start()
        made[1].start()
        yield made
    finally:
        for node in made:
            node.stop()
        pg.destroy()
        servers.release("redis-cluster")


@pytest.fixture
async def clients() -> AsyncIterator[list[HubbubClient]]:
    made: list[HubbubClient] = []
    yield made
    for client in made:
        await client.close()


async def _user(nodes: list[NodeProcess], clients: list[HubbubClient], i: int) -> HubbubClient:
    client = HubbubClient(nodes[i].url)
    clients.append(client)
    await client.register(f"rc{uuid.uuid4().hex[:8]}", PASSWORD)
    await client.connect()
    return client


async def test_messages_and_presence_cross_nodes(
    nodes: list[NodeProcess], clients: list[HubbubClient]
) -> None:
    alice, bob = await _user(nodes, clients, 0), await _user(nodes, clients, 1)
    await alice.befriend(bob)
    ack = await alice.send_text("over the Redis Cluster", to=bob.user_id)
    push = await bob.next_event("msg", timeout=5 * TIMEOUT_FACTOR)
    assert push["msg"]["seq"] == ack["seq"] and push["msg"]["body"] == {"text": "over the Redis Cluster"}
    await bob.send_text("back", to=alice.user_id)
    assert (await alice.next_event("msg", timeout=5 * TIMEOUT_FACTOR))["msg"]["sender"] == bob.user_id
    friends = await alice.api("GET", "/api/v1/friends")
    assert [f["online"] for f in friends["friends"]] == [True]


async def test_a_killed_node_takes_its_users_offline(
    nodes: list[NodeProcess], clients: list[HubbubClient]
) -> None:
    alice, bob = await _user(nodes, clients, 0), await _user(nodes, clients, 1)
    await alice.befriend(bob)
    nodes[1].kill()  # bob's node dies without a word: nothing renews bob's entry, nothing needs to
    ack = await alice.send_text("while you were away", to=bob.user_id)  # stored for bob whatever happens
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15 * TIMEOUT_FACTOR  # the lease lapses in 6 s, answers are cached 1 s
    while (await alice.api("GET", "/api/v1/friends"))["friends"][0]["online"]:
        assert loop.time() < deadline, "bob is still online after his node died"
        await asyncio.sleep(0.2)
    nodes[1].start()  # back with the same node id, a new incarnation
    bob.base_url = nodes[1].url
    await sync_when_connected(bob)
    conv = f"p:{min(alice.user_id, bob.user_id)}:{max(alice.user_id, bob.user_id)}"
    assert [m["body"] for m in bob.history(conv)] == [{"text": "while you were away"}]
    assert bob.history(conv)[0]["seq"] == ack["seq"]
    # Online again once alice's node sees the new incarnation (its lookups are cached for a second).
    deadline = loop.time() + 10 * TIMEOUT_FACTOR
    while not (await alice.api("GET", "/api/v1/friends"))["friends"][0]["online"]:
        assert loop.time() < deadline, "bob is still offline after his node came back"
        await asyncio.sleep(0.2)
