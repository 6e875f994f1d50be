"""Operations on a real 3-node cluster: a rolling restart under load loses nothing, a ban reaches every node
within a second (from a node and from the CLI), the node list, the word list reaching every node, and
readiness following Redis and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError
from tests import servers
from tests.cluster.clients import MakeClient, client_maker
from tests.cluster.conftest import TIMEOUT_FACTOR, Cluster, NodeProcess
from tests.cluster.test_cluster import Traffic, assert_no_acked_loss

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"
DRAIN_TIMEOUT_S = 4


class OpsCluster(Cluster):
    def __init__(self, *args: object, database: str, env: dict[str, str]) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.database = database
        self.env = env

    def urls(self, first: int) -> list[str]:
        """Every node's URL, starting with ``first``: a client moves on when its node drains or dies."""
        return [self.url((first + i) % len(self.nodes)) for i in range(len(self.nodes))]

    def hubbub(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**self.env, "HUBBUB_DATABASE": self.database, "HUBBUB_REDIS": self.redis.url}
        return subprocess.run(
            [sys.executable, "-m", "hubbub", *args], env=env, capture_output=True, text=True, timeout=60
        )

    def ready(self, i: int) -> int:
        try:
            with urllib.request.urlopen(self.url(i) + "/readyz", timeout=3) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsCluster]:
    redis = servers.RedisServer().start()
    pg = servers.PostgresServer().start()
    tmp = tmp_path_factory.mktemp("ops-cluster")
    env = {
        **os.environ,
        "HUBBUB_JWT_SECRET": "ops-test-secret-" + "x" * 32,
        "HUBBUB_ARGON2_TIME_COST": "1",
        "HUBBUB_ARGON2_MEMORY_KIB": "256",
        "HUBBUB_LOGIN_BURST": "1000",
        "HUBBUB_SEND_BURST": "2000",
        "HUBBUB_LOG_LEVEL": "info",
        "HUBBUB_DRAIN_TIMEOUT_S": str(DRAIN_TIMEOUT_S),
        "HUBBUB_WORD_REFRESH_S": "0.3",
        "HUBBUB_LOAD_REPORT_S": "0.5",
        "HUBBUB_FIRST_USER_ADMIN": "false",
    }
    nodes: list[NodeProcess] = []
    try:
        database = pg.create_database("ops")
        for i in (1, 2, 3):
            nodes.append(NodeProcess(f"n{i}", redis.url, database, tmp, env))
        nodes[0].start()
        for node in nodes[1:]:
            node.spawn()
        for node in nodes[1:]:
            node.wait_healthy()
        yield OpsCluster(redis, pg, nodes, database=database, env=env)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
        pg.destroy()


@pytest.fixture
async def make_client(cluster: OpsCluster) -> AsyncIterator[MakeClient]:
    async with client_maker(cluster.urls, "o") as make:
        yield make


@pytest.fixture
async def admin(cluster: OpsCluster, make_client: MakeClient) -> HubbubClient:
    """An admin made the operator's way: registered, then granted with ``hubbub admin`` on the database."""
    client = await make_client(0, connect=False)
    done = await asyncio.to_thread(cluster.hubbub, "admin", "grant-admin", str(client.user_id))
    assert done.returncode == 0, done.stderr
    return client


async def test_ban_closes_connections_on_every_node_within_a_second(
    cluster: OpsCluster, admin: HubbubClient, make_client: MakeClient
) -> None:
    # one user, a connection on each node (three terminals), banned through node 1's admin route
    web = await make_client(0)
    mobile = await make_client(1, terminal="mobile", like=web)
    desktop = await make_client(2, terminal="desktop", like=web)
    started = time.monotonic()
    await admin.api("PUT", f"/api/v1/admin/users/{web.user_id}/ban")
    for client in (web, mobile, desktop):
        await client.wait_until(lambda c=client: c.close_code == 4403, timeout=1 * TIMEOUT_FACTOR)
    assert time.monotonic() - started < 1.0 * TIMEOUT_FACTOR
    with pytest.raises(ApiError) as err:
        await web.login(web.user["username"], PASSWORD)  # type: ignore[index]
    assert err.value.code == "forbidden"

    # the same from the CLI, which runs as no node and reaches the nodes through their Redis queues
    other = await make_client(1)
    other_too = await make_client(2, terminal="mobile", like=other)
    done = await asyncio.to_thread(cluster.hubbub, "admin", "ban", other.user["username"])  # type: ignore[index]
    assert done.returncode == 0, done.stderr
    finished = time.monotonic()
    for client in (other, other_too):
        await client.wait_until(lambda c=client: c.close_code == 4403, timeout=1 * TIMEOUT_FACTOR)
    assert time.monotonic() - finished < 1.0 * TIMEOUT_FACTOR


async def test_nodes_and_words_across_the_cluster(
    cluster: OpsCluster, admin: HubbubClient, make_client: MakeClient
) -> None:
    a, b = await make_client(0), await make_client(2)
    await a.befriend(b)
    await asyncio.sleep(0.8)  # a load report period
    nodes = (await admin.api("GET", "/api/v1/admin/nodes"))["nodes"]
    assert [(n["node"], n["alive"], n["draining"]) for n in nodes] == [
        ("n1", True, False),
        ("n2", True, False),
        ("n3", True, False),
    ]
    assert nodes[0]["connections"] >= 1 and nodes[2]["connections"] >= 1
    listed = await asyncio.to_thread(cluster.hubbub, "admin", "nodes")
    assert listed.returncode == 0 and "n1" in listed.stdout and "n3" in listed.stdout, listed.stderr

    # a word added through node 1 is applied by node 3 within its refresh period
    await admin.api("POST", "/api/v1/admin/words", {"add": [f"zork{a.user_id}"]})
    deadline = asyncio.get_running_loop().time() + 5 * TIMEOUT_FACTOR
    while True:
        await b.send_text(f"a ZORK{a.user_id} here", to=a.user_id)
        pushed = (await a.next_event("msg", timeout=5))["msg"]["body"]["text"]
        if pushed == "a *** here":
            break
        assert asyncio.get_running_loop().time() < deadline, pushed
        await asyncio.sleep(0.2)


async def test_rolling_restart_under_load_loses_nothing(cluster: OpsCluster, make_client: MakeClient) -> None:
    pairs = []
    for na, nb in [(0, 1), (1, 2), (2, 0), (0, 2), (1, 0), (2, 1)]:
        a, b = await make_client(na), await make_client(nb)
        await a.befriend(b)
        pairs.append((a, b))
    traffic = Traffic(pairs)
    traffic.start()
    await asyncio.sleep(1.0)
    drained = 0
    for node in cluster.nodes:
        assert node.proc is not None
        before = traffic.count()
        moved = [c for pair in pairs for c in pair if c.base_url == node.url]
        started = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(node.proc.wait, DRAIN_TIMEOUT_S + 5)
        took = time.monotonic() - started
        assert code == 0, f"{node.node_id} exited with {code}: {node.log_path.read_text()[-2000:]}"
        # the drain itself keeps to its budget; the process exit adds interpreter teardown, and the
        # watchdog caps the whole at the budget + 5 s whatever hangs
        assert took < DRAIN_TIMEOUT_S + 5, f"{node.node_id} took {took:.1f} s to exit"
        stopped = [json.loads(line) for line in node.log_path.read_text().splitlines() if '"stopped"' in line]
        assert stopped and stopped[-1]["seconds"] < DRAIN_TIMEOUT_S, stopped
        drained += len(moved)
        # its clients were told to go (4503) and carry on from the other nodes
        for client in moved:
            await client.wait_until(lambda c=client, url=node.url: c.base_url != url, timeout=5 * TIMEOUT_FACTOR)
        await asyncio.to_thread(node.start)  # the same node id comes back, as in a deploy
        await asyncio.sleep(0.5)
        assert traffic.count() > before, f"traffic stalled while {node.node_id} restarted"
    await asyncio.sleep(0.5)
    await traffic.stop()
    assert drained >= 4 and traffic.count() > 100
    await assert_no_acked_loss(cluster, traffic, node=0)
    log = cluster.nodes[0].log_path.read_text()
    assert '"event": "draining"' in log and '"code": 4503' in log


async def test_readiness_follows_redis_and_postgres(cluster: OpsCluster) -> None:
    assert [cluster.ready(i) for i in range(3)] == [200, 200, 200]
    cluster.redis.kill()
    try:
        assert await _eventually(lambda: cluster.ready(1) == 503)
    finally:
        cluster.redis.start()
    assert await _eventually(lambda: cluster.ready(1) == 200)
    cluster.pg.stop()
    try:
        assert await _eventually(lambda: cluster.ready(2) == 503)
        assert cluster.ready(0) == 503
    finally:
        cluster.pg.start()
    assert await _eventually(lambda: all(cluster.ready(i) == 200 for i in range(3)))


async def _eventually(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout * TIMEOUT_FACTOR
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):
            return True
        await asyncio.sleep(0.1)
    return False


