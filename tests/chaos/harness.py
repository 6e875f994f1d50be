"""A chaos run: node processes over a throwaway Redis and PostgreSQL, users in 1:1, group and hot-group
conversations sending until acknowledged, faults on a schedule, then the exactly-once checker
(hubbub/proof/checker.py) over everything the server stored, the senders were told and the members hold.

Used by the CI run (tests/chaos/test_chaos_ci.py: short, every fault once) and the long soak
(scripts/soak.py: random faults for minutes). Figures are returned as a dict, for the CI log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError, ClosedError
from hubbub.proof.checker import Acked, Ledger, Refused, Verdict, check
from tests import servers
from tests.cluster.conftest import NodeProcess

PASSWORD = "soak-password-1"
#: Refusals that say "nothing stored, try again": the sender retries with the same cmid.
RETRY_CODES = ("unavailable", "rate_limited")
#: Environment of every node: limits out of the way (one address, thousands of sends).
NODE_ENV = {
    "HUBBUB_ARGON2_TIME_COST": "1",
    "HUBBUB_ARGON2_MEMORY_KIB": "256",
    "HUBBUB_LOGIN_BURST": "100000",
    "HUBBUB_SEND_BURST": "100000",
    "HUBBUB_SEND_RATE": "100000",
    "HUBBUB_IP_LIMIT_EXEMPT": "127.0.0.0/8",
    "HUBBUB_MAX_WS_PER_IP": "100000",
    "HUBBUB_GROUP_CREATE_PER_HOUR": "100000",
    "HUBBUB_ACCESS_TOKEN_TTL_S": "86400",
    "HUBBUB_LOG_LEVEL": "warning",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class NullQueue:
    """The SDK queues every pushed frame for tests; a chaos run would keep them all. Drop them."""

    def put_nowait(self, _item: Any) -> None:
        pass


class ChaosClient(HubbubClient):
    """An SDK client that notes which messages arrived as pushes and how long each reconnect took."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls, request_timeout=30.0)
        self.events = NullQueue()  # type: ignore[assignment]
        self.live: set[str] = set()
        self.lost_at: float | None = None
        self.reconnects: list[float] = []

    async def _session(self) -> None:
        try:
            await super()._session()
        finally:
            if not self._closed and self.lost_at is None:
                self.lost_at = time.monotonic()

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "msg" and self.user and frame["msg"]["sender"] != self.user["id"]:
            self.live.add(frame["msg"]["id"])
        elif kind == "auth_ok" and self.lost_at is not None:
            self.reconnects.append(time.monotonic() - self.lost_at)
            self.lost_at = None
        super()._on_frame(frame)


@dataclass
class Stats:
    sent: int = 0
    failed: int = 0
    retried: Counter[str] = field(default_factory=Counter)
    chaos: Counter[str] = field(default_factory=Counter)
    terminal_closes: int = 0
    ledger: Ledger = field(default_factory=Ledger)


async def http_json(
    http: aiohttp.ClientSession, method: str, url: str, body: Any = None, token: str | None = None
) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    for attempt in range(30):
        try:
            async with http.request(method, url, json=body, headers=headers) as resp:
                data = await resp.json(content_type=None) if resp.status != 204 else None
                if resp.status >= 500 or resp.status == 429:
                    raise aiohttp.ClientError(f"{resp.status} {data}")
                if resp.status >= 400:
                    raise ApiError(data["error"]["code"], data["error"]["message"], resp.status)
                return data
        except (aiohttp.ClientError, OSError, TimeoutError):
            if attempt == 29:
                raise
            await asyncio.sleep(0.5)


# -- setup ----------------------------------------------------------------------------------------
async def setup(
    urls: list[str], n_users: int, group_size: int, hot_size: int = 0
) -> tuple[list[ChaosClient], dict[str, list[int]], str | None]:
    """Users; half in private pairs, the rest in groups of ``group_size``, plus (``hot_size`` > 1) one hot
    group of the first ``hot_size`` users. Returns clients, conv -> member indexes, the hot group's conv."""
    sem = asyncio.Semaphore(32)
    tag = secrets.token_hex(3)
    clients = [ChaosClient(urls[i % len(urls) :] + urls[: i % len(urls)]) for i in range(n_users)]

    async def register(i: int) -> None:
        async with sem:
            for attempt in range(20):
                try:
                    await clients[i].register(f"s{tag}_{i}", PASSWORD)
                    return
                except (aiohttp.ClientError, OSError, ApiError):
                    if attempt == 19:
                        raise
                    await asyncio.sleep(0.3)

    await asyncio.gather(*(register(i) for i in range(n_users)))
    convs: dict[str, list[int]] = {}
    hot_conv: str | None = None
    async with aiohttp.ClientSession() as http:

        async def befriend(a: int, b: int) -> None:
            async with sem:
                ca, cb = clients[a], clients[b]
                url = ca.base_url + "/api/v1/friends/requests"
                req = await http_json(http, "POST", url, {"to": cb.user_id}, ca.access_token)
                if req["status"] == "pending":
                    accept = cb.base_url + f"/api/v1/friends/requests/{req['id']}/accept"
                    await http_json(http, "POST", accept, None, cb.access_token)

        half = (n_users // 2) // 2 * 2
        pairs = [(i, i + 1) for i in range(0, half, 2)]
        groups = [list(range(s, min(s + group_size, n_users))) for s in range(half, n_users, group_size)]
        groups = [g for g in groups if len(g) >= 2]
        hot = list(range(min(hot_size, n_users))) if hot_size > 1 else []
        friendships = set(pairs) | {(g[0], m) for g in groups for m in g[1:]} | {(hot[0], m) for m in hot[1:]}
        await asyncio.gather(*(befriend(a, b) for a, b in friendships))
        for a, b in pairs:
            ua, ub = clients[a].user_id, clients[b].user_id
            convs[f"p:{min(ua, ub)}:{max(ua, ub)}"] = [a, b]

        async def make_group(members: list[int], mark_hot: bool = False) -> str:
            async with sem:
                owner = clients[members[0]]
                body = {"name": f"g{members[0]}", "members": [clients[m].user_id for m in members[1:]]}
                group = await http_json(
                    http, "POST", owner.base_url + "/api/v1/groups", body, owner.access_token
                )
                if mark_hot:
                    url = owner.base_url + f"/api/v1/groups/{group['id']}"
                    await http_json(http, "PATCH", url, {"hot": True}, owner.access_token)
                convs[group["conv"]] = members
                return str(group["conv"])

        await asyncio.gather(*(make_group(g) for g in groups))
        if hot:
            hot_conv = await make_group(hot, mark_hot=True)
    log(f"{n_users} users: {len(pairs)} private conversations, {len(groups)} groups, hot group {hot_conv}")
    return clients, convs, hot_conv


async def connect_all(clients: Sequence[ChaosClient]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(c: ChaosClient) -> None:
        async with sem:
            await c.connect(timeout=60)

    await asyncio.gather(*(one(c) for c in clients))


# -- traffic --------------------------------------------------------------------------------------
async def send_one(client: ChaosClient, conv: str, text: str, stats: Stats, give_up_s: float = 90) -> None:
    """Send until acknowledged (same cmid on every try), into the ledger: acked, refused (only when every
    try was refused on a connection that never broke, so nothing can have been stored) or unknown."""
    loop = asyncio.get_running_loop()
    cmid = secrets.token_hex(8)
    deadline = loop.time() + give_up_s
    sent_at = time.monotonic()
    clean = True
    while True:
        connects = client.connects
        try:
            ack = await client.send_text(text, conv=conv, cmid=cmid, timeout=max(1, deadline - loop.time()))
            break
        except ApiError as exc:
            clean = clean and client.connects == connects and client._ws is not None
            if exc.code in RETRY_CODES and loop.time() < deadline:
                stats.retried[exc.code] += 1
                await asyncio.sleep(random.uniform(0.5, 2))
                continue
            stats.failed += 1
            if clean:
                stats.ledger.refused.append(Refused(conv, client.user_id, cmid, exc.code))
            return
        except (TimeoutError, ClosedError, ConnectionError, aiohttp.ClientError):
            stats.failed += 1  # unknown outcome: neither acked nor refused
            return
    stats.ledger.acked.append(
        Acked(ack["conv"], ack["seq"], ack["id"], client.user_id, cmid, sent_at, time.monotonic())
    )


async def traffic(
    clients: list[ChaosClient],
    convs: dict[str, list[int]],
    stats: Stats,
    rate: float,
    until: float,
    pending: set[asyncio.Task[None]],
    hot_conv: str | None = None,
) -> None:
    """``rate`` sends a second in all, random sender and conversation (a fifth of them to the hot group)."""
    by_user: dict[int, list[str]] = {}
    for conv, members in convs.items():
        for m in members:
            by_user.setdefault(m, []).append(conv)
    senders = list(by_user)
    loop = asyncio.get_running_loop()
    while loop.time() < until:
        if hot_conv is not None and random.random() < 0.2:
            conv = hot_conv
            i = random.choice(convs[hot_conv])
        else:
            i = random.choice(senders)
            conv = random.choice(by_user[i])
        stats.sent += 1
        task = loop.create_task(send_one(clients[i], conv, f"m{stats.sent} from {i}", stats))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(random.expovariate(rate))


# -- faults ---------------------------------------------------------------------------------------
async def kill_and_restart(node: NodeProcess, stats: Stats, down_s: float) -> None:
    log(f"chaos: SIGKILL node {node.node_id}")
    stats.chaos["kill"] += 1
    node.kill()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(start_node, node)
    log(f"chaos: node {node.node_id} back")


def start_node(node: NodeProcess, attempts: int = 3) -> None:
    """Start a node and wait until healthy; on a machine this loaded, a start may take longer than the
    fixture's 20 s, so a live but slow process gets more time (a process that exited still fails at once)."""
    node.spawn()
    for attempt in range(attempts):
        try:
            node.wait_healthy()
            return
        except RuntimeError:
            if attempt == attempts - 1 or node.proc is None or node.proc.poll() is not None:
                raise


async def restart_redis(redis: servers.RedisServer, stats: Stats) -> None:
    log("chaos: Redis restarted empty")
    stats.chaos["redis"] += 1
    await asyncio.to_thread(redis.restart)


async def cut_sockets(clients: Sequence[ChaosClient], fraction: float, stats: Stats) -> None:
    victims = random.sample(list(clients), max(1, int(len(clients) * fraction)))
    log(f"chaos: cutting {len(victims)} client connections")
    stats.chaos["drop"] += 1
    for client in victims:
        with contextlib.suppress(Exception):
            await client.drop_connection()


# -- after the run --------------------------------------------------------------------------------
async def final_sync(clients: Sequence[ChaosClient], stats: Stats) -> None:
    """Every client connected again, then one full sync each (what a client does after every auth_ok)."""
    sem = asyncio.Semaphore(32)

    async def one(client: ChaosClient) -> None:
        async with sem:
            if client._runner is None or client._runner.done():
                stats.terminal_closes += 1  # ended by a terminal close: a user would log in again
                with contextlib.suppress(Exception):
                    await client.login(client.user["username"], PASSWORD)  # type: ignore[index]
                await client.connect(timeout=60)
            for _ in range(60):
                if client._ws is not None:
                    try:
                        await client.sync()
                        return
                    except (TimeoutError, ApiError, ConnectionError):
                        pass
                await asyncio.sleep(1)
            raise RuntimeError(f"client {client.user_id} did not reconnect")

    await asyncio.gather(*(one(c) for c in clients))


async def fetch_conv(
    http: aiohttp.ClientSession, client: HubbubClient, conv: str, after: int = 0
) -> list[Any]:
    """A conversation as the server stores it (over HTTP: the truth), from ``after`` + 1 on."""
    out: list[Any] = []
    while True:
        url = f"{client.base_url}/api/v1/conversations/{conv}/messages?after_seq={after}&limit=200"
        page = await http_json(http, "GET", url, None, client.access_token)
        out += page["messages"]
        if not page["messages"] or not page["has_more"]:
            return out
        after = page["messages"][-1]["seq"]


async def verify(clients: Sequence[ChaosClient], convs: dict[str, list[int]], stats: Stats) -> Verdict:
    sem = asyncio.Semaphore(16)
    truth: dict[str, list[Any]] = {}
    async with aiohttp.ClientSession() as http:

        async def load(conv: str, members: list[int]) -> None:
            async with sem:
                truth[conv] = await fetch_conv(http, clients[members[0]], conv)

        await asyncio.gather(*(load(c, m) for c, m in convs.items()))
    copies = {(clients[i].user_id, conv): clients[i].history(conv) for conv, ms in convs.items() for i in ms}
    live = {c.user_id: c.live for c in clients}
    verdict = check(truth, stats.ledger, copies, live)
    for line in verdict.problems[:30]:
        log("PROBLEM " + line)
    return verdict


def figures(stats: Stats, verdict: Verdict, clients: Sequence[ChaosClient], started: float) -> dict[str, Any]:
    times = sorted(t for c in clients for t in c.reconnects)

    def pct(p: float) -> float:
        return round(times[min(len(times) - 1, int(p * len(times)))], 2) if times else 0.0

    return {
        "sent": stats.sent,
        "acked": len(stats.ledger.acked),
        "not_acked": stats.failed,
        "refused": len(stats.ledger.refused),
        "retries": dict(stats.retried),
        "terminal_closes": stats.terminal_closes,
        **verdict.figures(),
        "reconnects": len(times),
        "reconnect_s_median": round(statistics.median(times), 2) if times else 0.0,
        "reconnect_s_p95": pct(0.95),
        "reconnect_s_max": round(times[-1], 2) if times else 0.0,
        "chaos": dict(stats.chaos),
        "wall_s": round(time.monotonic() - started),
    }


# -- the cluster ----------------------------------------------------------------------------------
class ChaosCluster:
    """Redis, PostgreSQL and ``n`` node processes (logs in ``tmp``)."""

    def __init__(self, tmp: Path, n: int = 3, env: dict[str, str] | None = None) -> None:
        self.tmp = tmp
        self.redis = servers.RedisServer().start()
        self.pg = servers.PostgresServer().start()
        self.database = self.pg.create_database("chaos")
        node_env = {
            **os.environ,
            **NODE_ENV,
            "HUBBUB_JWT_SECRET": "chaos-" + secrets.token_hex(24),
            **(env or {}),
        }
        self.nodes = [
            NodeProcess(f"n{i + 1}", self.redis.url, self.database, tmp, node_env) for i in range(n)
        ]
        self.nodes[0].start()  # the first one runs the migrations alone
        for node in self.nodes[1:]:
            node.start()

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    async def revive(self) -> None:
        for node in self.nodes:
            if node.proc is None or node.proc.poll() is not None:
                await asyncio.to_thread(start_node, node)

    def sql(self, statement: str) -> str:
        return self.pg.psql(statement, database=self.database.rsplit("/", 1)[1])

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self.redis.stop()
        self.pg.destroy()


async def close_all(clients: Sequence[ChaosClient]) -> None:
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()
