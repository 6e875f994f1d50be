"""Calls across two nodes (issue 18): caller and callee on different nodes behave exactly as on one, and a
node killed mid-call leaves nobody busy once the call's lease runs out."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from hubbub.client import HubbubClient
from tests import servers
from tests.cluster.conftest import Cluster, NodeProcess
from tests.e2e.test_calls import full_call, no_event, request_when_back

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"
LEASE_S = 2.0


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    redis = servers.RedisServer().start()
    pg = servers.PostgresServer().start()
    tmp = tmp_path_factory.mktemp("calls")
    env = {
        **os.environ,
        "HUBBUB_JWT_SECRET": "cluster-test-secret-" + "x" * 32,
        "HUBBUB_ARGON2_TIME_COST": "1",
        "HUBBUB_ARGON2_MEMORY_KIB": "256",
        "HUBBUB_LOGIN_BURST": "1000",
        "HUBBUB_LOG_LEVEL": "warning",
        "HUBBUB_CALL_LEASE_S": str(LEASE_S),
    }
    nodes: list[NodeProcess] = []
    try:
        database = pg.create_database("calls")
        nodes = [NodeProcess(f"c{i}", redis.url, database, tmp, env) for i in (1, 2)]
        nodes[0].start()
        nodes[1].start()
        yield Cluster(redis, pg, nodes)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
        pg.destroy()


async def user(
    urls: str | list[str], name: str, *, register: bool = True, terminal: str = "web"
) -> HubbubClient:
    client = HubbubClient(urls, terminal=terminal)
    if register:
        await client.register(name, PASSWORD)
    else:
        await client.login(name, PASSWORD)
    await client.connect()
    return client


async def test_a_call_across_nodes_with_the_callees_devices_on_both(pair: Cluster) -> None:
    tag = uuid.uuid4().hex[:6]
    alice = await user(pair.url(0), f"xa{tag}")
    bob_web = await user(pair.url(1), f"xb{tag}")
    bob_phone = await user(pair.url(0), f"xb{tag}", register=False, terminal="mobile")
    try:
        await alice.befriend(bob_web)
        await full_call(alice, bob_web, bob_phone)
    finally:
        for client in (alice, bob_web, bob_phone):
            await client.close()


async def test_a_node_killed_mid_call_frees_both_after_the_lease(pair: Cluster) -> None:
    tag = uuid.uuid4().hex[:6]
    alice = await user(pair.url(0), f"ka{tag}")
    bob = await user([pair.url(1), pair.url(0)], f"kb{tag}")  # moves to node 1 when node 2 dies
    try:
        await alice.befriend(bob)
        invited = await alice.request({"type": "call_invite", "to": bob.user_id, "media": "video"})
        cid = invited["call"]["id"]
        await bob.next_event("call_incoming")
        await bob.request({"type": "call_accept", "call": cid})
        await alice.next_event("call_accepted")
        pair.nodes[1].kill()  # SIGKILL: no disconnect handler runs, nobody renews Bob's side
        ended = await alice.next_event("call_ended", timeout=LEASE_S * 3 + 5)
        assert (ended["call"], ended["reason"]) == (cid, "lost")
        await bob.wait_until(lambda: bob._ws is not None, timeout=20)
        again = await alice.request({"type": "call_invite", "to": bob.user_id})  # nobody is busy
        await alice.request({"type": "call_cancel", "call": again["call"]["id"]})
    finally:
        pair.nodes[1].start()
        await alice.close()
        await bob.close()


async def test_a_device_whose_node_dies_takes_the_call_to_another_node(pair: Cluster) -> None:
    tag = uuid.uuid4().hex[:6]
    alice = await user(pair.url(0), f"ra{tag}")
    bob = await user([pair.url(1), pair.url(0)], f"rb{tag}")
    try:
        await alice.befriend(bob)
        invited = await alice.request({"type": "call_invite", "to": bob.user_id, "media": "audio"})
        cid = invited["call"]["id"]
        await bob.next_event("call_incoming")
        await bob.request({"type": "call_accept", "call": cid})
        await alice.next_event("call_accepted")
        pair.nodes[1].kill()
        await request_when_back(bob, {"type": "call_resume", "call": cid})  # now through node 1
        await alice.request({"type": "call_sdp", "call": cid, "kind": "offer", "sdp": "v=0 after failover"})
        assert (await bob.next_event("call_sdp"))["sdp"] == "v=0 after failover"
        await no_event(alice, "call_ended", LEASE_S * 2)  # well past the lease: the new node renews it
        await alice.request({"type": "call_hangup", "call": cid})
        ended = await bob.next_event("call_ended")
        assert ended["reason"] == "hangup" and ended["duration_ms"] > LEASE_S * 2000
    finally:
        pair.nodes[1].start()
        await alice.close()
        await bob.close()
