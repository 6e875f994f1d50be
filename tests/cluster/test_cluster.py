"""Three real node processes over one Redis and one PostgreSQL: cross-node traffic and the failure model
of the design (a node SIGKILLed mid-traffic, Redis restarted empty, PostgreSQL stopped).

The proof each time: every message acknowledged to a sender is, after sync, present exactly once and in
seq order for both members of its conversation, as a fresh client pulling from scratch sees it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError
from tests.cluster.clients import MakeClient, client_maker
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


@pytest.fixture
async def make_client(cluster: Cluster) -> AsyncIterator[MakeClient]:
    async with client_maker(cluster.url, "c") as make:
        yield make


def conv_of(a: HubbubClient, b: HubbubClient) -> str:
    x, y = sorted((a.user_id, b.user_id))
    return f"p:{x}:{y}"


async def pairs_on_different_nodes(
    make_client: MakeClient, layout: list[tuple[int, int]]
) -> list[tuple[HubbubClient, HubbubClient]]:
    pairs = []
    for na, nb in layout:
        a, b = await make_client(na), await make_client(nb)
        await a.befriend(b)
        pairs.append((a, b))
    return pairs


class Traffic:
    """Both members of each pair send to each other until stopped; acks are recorded."""

    def __init__(self, pairs: list[tuple[HubbubClient, HubbubClient]]) -> None:
        self.pairs = pairs
        self.acked: dict[str, list[tuple[str, int]]] = {}  # conv -> (cmid, seq) acknowledged
        self.failed: list[str] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for a, b in self.pairs:
            self._tasks += [asyncio.create_task(self._send(a, b)), asyncio.create_task(self._send(b, a))]

    async def _send(self, me: HubbubClient, peer: HubbubClient) -> None:
        i = 0
        while not self._stop.is_set():
            cmid = f"{me.user_id}-{i}"
            try:
                ack = await me.send_text(f"m{i}", to=peer.user_id, cmid=cmid, timeout=20 * TIMEOUT_FACTOR)
            except (ApiError, TimeoutError) as exc:
                # refused (nothing stored) or unanswered: a real client retries the same cmid later
                self.failed.append(f"{cmid}: {exc}")
                await asyncio.sleep(0.1)
                continue
            self.acked.setdefault(ack["conv"], []).append((cmid, ack["seq"]))
            i += 1
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(asyncio.gather(*self._tasks), 30 * TIMEOUT_FACTOR)

    def count(self) -> int:
        return sum(len(v) for v in self.acked.values())


async def sync_when_connected(client: HubbubClient) -> None:
    """Sync once the client's own reconnect loop has a connection again."""
    deadline = asyncio.get_running_loop().time() + 15 * TIMEOUT_FACTOR
    while True:
        try:
            await client.sync()
            return
        except ConnectionError:
            assert asyncio.get_running_loop().time() < deadline, (
                f"client {client.user_id} never reconnected to {client.base_url}: close {client.close_code}, "
                f"runner {client._runner}"
            )
            await asyncio.sleep(0.1)


async def assert_no_acked_loss(cluster: Cluster, traffic: Traffic, node: int) -> None:
    """Every acked message is stored once, in order, and every member's live client holds all of them."""
    for a, b in traffic.pairs:
        conv = conv_of(a, b)
        acked = dict(traffic.acked.get(conv, []))
        fresh = HubbubClient(cluster.url(node), terminal="desktop")  # not "web": that would replace a
        fresh.user, fresh.access_token = a.user, a.access_token
        try:
            await fresh.connect()
            messages = fresh.history(conv)
        finally:
            await fresh.close()
        seqs = [m["seq"] for m in messages]
        assert seqs == list(range(1, len(seqs) + 1)), f"{conv}: seqs not gap-free and ascending"
        cmids = [m["cmid"] for m in messages]
        assert len(cmids) == len(set(cmids)), f"{conv}: a message was stored twice"
        by_cmid = {m["cmid"]: m["seq"] for m in messages}
        for cmid, seq in acked.items():
            assert by_cmid.get(cmid) == seq, f"{conv}: acked {cmid} (seq {seq}) missing or moved"
        for member in (a, b):  # the live clients, after a sync, hold exactly the same
            await sync_when_connected(member)
            held = [(m["seq"], m["cmid"]) for m in member.history(conv)]
            assert held == [(m["seq"], m["cmid"]) for m in messages], (
                f"{conv}: client {member.user_id} differs"
            )


async def test_cross_node_messages_presence_and_replacement(
    cluster: Cluster, make_client: MakeClient
) -> None:
    alice, bob = await make_client(0), await make_client(1)
    await alice.befriend(bob)
    ack = await alice.send_text("hello from n1", to=bob.user_id)
    push = await bob.next_event("msg", timeout=5)
    assert push["msg"]["seq"] == ack["seq"] and push["msg"]["body"] == {"text": "hello from n1"}
    await bob.send_text("hi from n2", to=alice.user_id)
    assert (await alice.next_event("msg", timeout=5))["msg"]["sender"] == bob.user_id

    # presence crosses nodes: carol's friend on n3 sees her come online on n1, and the friends list agrees
    carol_n3 = await make_client(2)
    await carol_n3.befriend(alice)
    bob_mobile = await make_client(2, terminal="mobile", like=bob)
    event = await alice.next_event("presence", where=lambda f: f["user"] == bob.user_id, timeout=5)
    assert event["online"] and event["terminals"] == ["mobile", "web"]
    friends = await carol_n3.api("GET", "/api/v1/friends")
    assert [f["online"] for f in friends["friends"]] == [True]

    # the same user and terminal logging in on another node replaces the first connection (4409)
    bob_web_again = await make_client(2, like=bob)
    await bob.wait_until(lambda: bob.close_code == 4409, timeout=5)
    await alice.send_text("after replacement", to=bob.user_id)
    for client in (bob_web_again, bob_mobile):
        assert (await client.next_event("msg", timeout=5))["msg"]["body"] == {"text": "after replacement"}


async def test_node_killed_mid_traffic(cluster: Cluster, make_client: MakeClient) -> None:
    pairs = await pairs_on_different_nodes(make_client, [(0, 1), (1, 2), (2, 1), (0, 2)])
    traffic = Traffic(pairs)
    traffic.start()
    await asyncio.sleep(1.5)
    assert traffic.count() > 20
    victim = cluster.nodes[1]
    victim.kill()  # SIGKILL: no goodbye, its acks in flight are lost, its registry entries linger
    for a, b in pairs:  # the clients of the dead node reconnect to a live one (as a balancer would send them)
        for c in (a, b):
            if c.base_url == victim.url:
                c.base_url = cluster.url(0)
    await asyncio.sleep(2.0)
    at_kill = traffic.count()
    await asyncio.sleep(1.0)
    assert traffic.count() > at_kill, "traffic did not resume on the surviving nodes"
    await traffic.stop()
    await assert_no_acked_loss(cluster, traffic, node=2)
    victim.start()  # back with the same node id: it joins again and takes traffic
    a, b = await make_client(1), await make_client(0)
    await a.befriend(b)
    await a.send_text("back", to=b.user_id)
    assert (await b.next_event("msg", timeout=5))["msg"]["body"] == {"text": "back"}


async def test_redis_restarted_empty_mid_traffic(cluster: Cluster, make_client: MakeClient) -> None:
    pairs = await pairs_on_different_nodes(make_client, [(0, 1), (1, 2), (2, 0)])
    traffic = Traffic(pairs)
    traffic.start()
    await asyncio.sleep(1.0)
    cluster.redis.restart()  # comes back empty: no registry, no streams, no groups
    await asyncio.sleep(1.0)
    await traffic.stop()
    await assert_no_acked_loss(cluster, traffic, node=0)
    # the nodes rebuilt their registry entries and queues by themselves: cross-node pushes work again
    a, b = pairs[0]
    deadline = asyncio.get_running_loop().time() + 10 * TIMEOUT_FACTOR
    while True:
        seq = (await a.send_text("after the restart", to=b.user_id))["seq"]
        try:
            await b.next_event("msg", where=lambda f, seq=seq: f["msg"]["seq"] == seq, timeout=1)
            break
        except TimeoutError:
            assert asyncio.get_running_loop().time() < deadline, "pushes never crossed nodes again"
    online = await a.api("GET", "/api/v1/friends")
    assert [f["online"] for f in online["friends"]] == [True]


async def test_postgres_stopped(cluster: Cluster, make_client: MakeClient) -> None:
    alice, bob = await make_client(0), await make_client(2)
    await alice.befriend(bob)
    await alice.send_text("before", to=bob.user_id)
    cluster.pg.stop()
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ApiError) as err:
            await alice.send_text("during", to=bob.user_id, timeout=10)
        assert err.value.code == "unavailable"
        assert loop.time() - started < 5, "a send must fail fast when the database is down"
        await asyncio.sleep(1.0)
        pong = await alice.request({"type": "ping"})  # the connection and its heartbeats live on
        assert pong["type"] == "pong"
        assert alice.close_code is None and bob.close_code is None
    finally:
        cluster.pg.start()
    ack = await alice.send_text("after", to=bob.user_id, timeout=20)
    assert ack["seq"] == 2
    assert (await bob.next_event("msg", where=lambda f: f["msg"]["seq"] == 2, timeout=5))["msg"]["body"] == {
        "text": "after"
    }
