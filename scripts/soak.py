#!/usr/bin/env python3
"""Soak and chaos run: a 3-node cluster, thousands of simulated users, faults, then a proof that nothing
acknowledged was lost or duplicated. Not a CI test (docs/reliability.md records runs).

    .venv/bin/python scripts/soak.py                      # 2,000 users, 10 minutes
    .venv/bin/python scripts/soak.py --minutes 3 --users 1000 --rate 80

What it does:
1. Starts a throwaway Redis (no persistence) and PostgreSQL (tests/servers.py) and 3 node processes.
2. Registers the users; pairs them as friends (a private conversation each) and makes groups of 8.
3. Connects every user over WebSocket (the SDK, given all three node URLs) and sends at ``--rate`` messages a
   second in total, to random conversations of the sender, each until acknowledged (same cmid on retry).
4. Meanwhile, every ``--chaos-every`` seconds, one of: SIGKILL a node and restart it a few seconds later;
   restart Redis empty; cut the sockets of 5% of the clients.
5. Stops sending, makes sure every node is up and every client reconnected, has each client sync, then checks
   for every conversation (read over HTTP: the truth) and every user's copy of it (what the SDK holds):
   seqs 1..max with no gap, every acknowledged message present exactly once at its acknowledged seq, no
   (sender, cmid) stored twice, and each user's copy equal to the truth.
Prints sent, acked, delivered live, recovered by sync, lost, duplicated; exits 1 if lost or duplicated > 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

import aiohttp  # noqa: E402
from tests import servers  # noqa: E402
from tests.cluster.conftest import NodeProcess  # noqa: E402

from hubbub.client import HubbubClient  # noqa: E402
from hubbub.client.sdk import ApiError, ClosedError  # noqa: E402

PASSWORD = "soak-password-1"


class NullQueue:
    """The SDK queues every pushed frame for tests; a soak run would keep them all. Drop them."""

    def put_nowait(self, _item: Any) -> None:
        pass


class SoakClient(HubbubClient):
    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls, request_timeout=30.0)
        self.events = NullQueue()  # type: ignore[assignment]
        self.live: set[str] = set()  # ids of messages from others that arrived as pushes

    def _on_frame(self, frame: dict[str, Any]) -> None:
        if frame.get("type") == "msg" and self.user and frame["msg"]["sender"] != self.user["id"]:
            self.live.add(frame["msg"]["id"])
        super()._on_frame(frame)


class Stats:
    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.chaos: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()
        self.terminal_closes = 0
        #: (conv, seq) -> (message id, sender, cmid) of every acknowledged message
        self.acks: dict[tuple[str, int], tuple[str, int, str]] = {}
        self.ack_conflicts: list[str] = []


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


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
async def setup(urls: list[str], n_users: int, group_size: int) -> tuple[list[SoakClient], dict[str, list[int]]]:
    """Users, friend pairs (private conversations) and groups; returns clients and conv -> member indexes."""
    sem = asyncio.Semaphore(48)
    tag = secrets.token_hex(3)
    clients = []
    for i in range(n_users):
        rotated = urls[i % len(urls) :] + urls[: i % len(urls)]
        clients.append(SoakClient(rotated))

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
    log(f"registered {n_users} users")

    convs: dict[str, list[int]] = {}
    async with aiohttp.ClientSession() as http:

        async def befriend(a: int, b: int) -> None:
            async with sem:
                ca, cb = clients[a], clients[b]
                req = await http_json(
                    http, "POST", ca.base_url + "/api/v1/friends/requests", {"to": cb.user_id}, ca.access_token
                )
                if req["status"] == "pending":
                    await http_json(
                        http,
                        "POST",
                        cb.base_url + f"/api/v1/friends/requests/{req['id']}/accept",
                        None,
                        cb.access_token,
                    )

        # Half the users in private pairs, the other half in groups of ``group_size`` (their creator
        # befriends the others first).
        half = (n_users // 2) // 2 * 2
        pairs = [(i, i + 1) for i in range(0, half, 2)]
        groups = [list(range(s, min(s + group_size, n_users))) for s in range(half, n_users, group_size)]
        groups = [g for g in groups if len(g) >= 2]
        await asyncio.gather(*(befriend(a, b) for a, b in pairs))
        await asyncio.gather(*(befriend(g[0], m) for g in groups for m in g[1:]))
        for a, b in pairs:
            ua, ub = clients[a].user_id, clients[b].user_id
            convs[f"p:{min(ua, ub)}:{max(ua, ub)}"] = [a, b]

        async def make_group(members: list[int]) -> None:
            async with sem:
                owner = clients[members[0]]
                body = {"name": f"g{members[0]}", "members": [clients[m].user_id for m in members[1:]]}
                group = await http_json(http, "POST", owner.base_url + "/api/v1/groups", body, owner.access_token)
                convs[group["conv"]] = members

        await asyncio.gather(*(make_group(g) for g in groups))
    log(f"{len(pairs)} private conversations, {len(groups)} groups of up to {group_size}")
    return clients, convs


# -- traffic --------------------------------------------------------------------------------------
async def traffic(
    clients: list[SoakClient],
    convs: dict[str, list[int]],
    stats: Stats,
    rate: float,
    until: float,
    pending: set[asyncio.Task[None]],
) -> None:
    by_user: dict[int, list[str]] = {}
    for conv, members in convs.items():
        for m in members:
            by_user.setdefault(m, []).append(conv)
    senders = list(by_user)
    counter = 0
    loop = asyncio.get_running_loop()

    async def one(i: int, conv: str, text: str) -> None:
        client = clients[i]
        cmid = secrets.token_hex(8)
        deadline = loop.time() + 90
        while True:
            try:
                ack = await client.send_text(text, conv=conv, cmid=cmid, timeout=max(1, deadline - loop.time()))
                break
            except ApiError as exc:
                # "unavailable" and "rate_limited" mean nothing was stored: a client retries, same cmid.
                if exc.code in ("unavailable", "rate_limited") and loop.time() < deadline:
                    stats.retried[exc.code] += 1
                    await asyncio.sleep(random.uniform(0.5, 2))
                    continue
                stats.failed += 1
                log(f"send refused ({exc}); not acknowledged, so not counted")
                return
            except (TimeoutError, ClosedError, ConnectionError, aiohttp.ClientError) as exc:
                stats.failed += 1
                if stats.failed <= 5:
                    log(f"send failed ({type(exc).__name__}: {exc}); not acknowledged, so not counted")
                return
        stats.acked += 1
        key = (ack["conv"], ack["seq"])
        value = (ack["id"], client.user_id, cmid)
        if stats.acks.get(key, value) != value:
            stats.ack_conflicts.append(f"{key}: acked for {stats.acks[key]} and {value}")
        stats.acks[key] = value

    while loop.time() < until:
        i = random.choice(senders)
        conv = random.choice(by_user[i])
        counter += 1
        stats.sent += 1
        task = loop.create_task(one(i, conv, f"m{counter} from {i}"))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(random.expovariate(rate))


async def chaos(
    nodes: list[NodeProcess],
    redis: servers.RedisServer,
    clients: list[SoakClient],
    stats: Stats,
    every: float,
    until: float,
) -> None:
    loop = asyncio.get_running_loop()
    actions = ["kill", "redis", "drop"]
    while loop.time() + every < until:
        await asyncio.sleep(every * (0.5 + random.random()))
        action = random.choice(actions)
        stats.chaos[action] += 1
        if action == "kill":
            node = random.choice(nodes)
            log(f"chaos: SIGKILL node {node.node_id}")
            node.kill()
            await asyncio.sleep(random.uniform(2, 6))
            await asyncio.to_thread(node.start)
            log(f"chaos: node {node.node_id} back")
        elif action == "redis":
            log("chaos: Redis restarted empty")
            await asyncio.to_thread(redis.restart)
        else:
            victims = random.sample(clients, max(1, len(clients) // 20))
            log(f"chaos: cutting {len(victims)} client connections")
            for client in victims:
                with contextlib.suppress(Exception):
                    await client.drop_connection()


# -- the checker ----------------------------------------------------------------------------------
async def fetch_conv(http: aiohttp.ClientSession, client: SoakClient, conv: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = 0
    while True:
        url = f"{client.base_url}/api/v1/conversations/{conv}/messages?after_seq={after}&limit=200"
        page = await http_json(http, "GET", url, None, client.access_token)
        out += page["messages"]
        if not page["messages"] or not page["has_more"]:
            return out
        after = page["messages"][-1]["seq"]


async def check(clients: list[SoakClient], convs: dict[str, list[int]], stats: Stats) -> dict[str, int]:
    lost = duplicated = gaps = mismatched = 0
    live = recovered = 0
    acked_by_conv: dict[str, dict[int, tuple[str, int, str]]] = {}
    for (conv, seq), value in stats.acks.items():
        acked_by_conv.setdefault(conv, {})[seq] = value
    sem = asyncio.Semaphore(32)
    truth: dict[str, list[dict[str, Any]]] = {}
    async with aiohttp.ClientSession() as http:

        async def load(conv: str, members: list[int]) -> None:
            async with sem:
                truth[conv] = await fetch_conv(http, clients[members[0]], conv)

        await asyncio.gather(*(load(c, m) for c, m in convs.items()))
    problems: list[str] = []
    for conv, members in convs.items():
        messages = truth[conv]
        seqs = [m["seq"] for m in messages]
        if seqs != list(range(1, len(seqs) + 1)):
            gaps += 1
            problems.append(f"{conv}: seqs are not 1..{len(seqs)}: {seqs[:20]}")
        by_seq = {m["seq"]: m for m in messages}
        sent_keys = Counter((m["sender"], m["cmid"]) for m in messages)
        dups = [k for k, n in sent_keys.items() if n > 1]
        duplicated += len(dups)
        if dups:
            problems.append(f"{conv}: stored more than once: {dups[:5]}")
        for seq, (mid, sender, cmid) in acked_by_conv.get(conv, {}).items():
            m = by_seq.get(seq)
            if m is None or m["id"] != mid or m["sender"] != sender or m["cmid"] != cmid:
                lost += 1
                problems.append(f"{conv}: acked seq {seq} ({mid}) is {m}")
        ids = [m["id"] for m in messages]
        for i in members:
            client = clients[i]
            held = client.history(conv)
            if [m["id"] for m in held] != ids:
                mismatched += 1
                problems.append(f"{conv}: user {client.user_id} holds {len(held)} messages, the server {len(ids)}")
            others = {m["id"] for m in held if m["sender"] != client.user_id and m["type"] == "text"}
            live += len(others & client.live)
            recovered += len(others - client.live)
    for line in problems[:30]:
        log("PROBLEM " + line)
    return {
        "lost": lost,
        "duplicated": duplicated,
        "convs_with_gaps": gaps,
        "copies_differing": mismatched,
        "delivered_live": live,
        "recovered_by_sync": recovered,
    }


async def final_sync(clients: list[SoakClient], stats: Stats) -> None:
    """Every client connected again, then one full sync each (what a client does after every auth_ok)."""
    sem = asyncio.Semaphore(64)

    async def one(client: SoakClient) -> None:
        async with sem:
            if client._runner is None or client._runner.done():
                # Ended by a terminal close (counted in "terminal_closes"): a user would log in again.
                stats.terminal_closes += 1
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


# -- main -----------------------------------------------------------------------------------------
async def run(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    redis = servers.RedisServer().start()
    pg = servers.PostgresServer().start()
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-soak-"))
    env = {
        **os.environ,
        "HUBBUB_JWT_SECRET": "soak-secret-" + secrets.token_hex(24),
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
    nodes: list[NodeProcess] = []
    clients: list[SoakClient] = []
    stats = Stats()
    started = time.monotonic()
    try:
        database = pg.create_database("soak")
        for i in (1, 2, 3):
            nodes.append(NodeProcess(f"n{i}", redis.url, database, tmp, env))
        nodes[0].start()
        for node in nodes[1:]:
            node.start()
        urls = [n.url for n in nodes]
        log(f"cluster up: {urls}, Redis {redis.url}, logs in {tmp}")
        clients, convs = await setup(urls, args.users, args.group_size)
        sem = asyncio.Semaphore(64)

        async def connect(c: SoakClient) -> None:
            async with sem:
                await c.connect(timeout=60)

        await asyncio.gather(*(connect(c) for c in clients))
        log(f"{len(clients)} clients connected; sending ~{args.rate}/s for {args.minutes} min with chaos")
        loop = asyncio.get_running_loop()
        until = loop.time() + args.minutes * 60
        pending: set[asyncio.Task[None]] = set()
        reporter = loop.create_task(report(stats, until))
        await asyncio.gather(
            traffic(clients, convs, stats, args.rate, until, pending),
            chaos(nodes, redis, clients, stats, args.chaos_every, until) if args.chaos_every > 0 else asyncio.sleep(0),
        )
        reporter.cancel()
        log(f"traffic stopped; waiting for {len(pending)} sends in flight")
        if pending:
            await asyncio.wait(pending, timeout=120)
        log(f"sends settled: acked {stats.acked}, not acked {stats.failed}; final sync of every client")
        for node in nodes:
            if node.proc is None or node.proc.poll() is not None:
                await asyncio.to_thread(node.start)
        await final_sync(clients, stats)
        log("every client reconnected and synced; checking")
        result = await check(clients, convs, stats)
        result["ack_conflicts"] = len(stats.ack_conflicts)
        elapsed = time.monotonic() - started
        summary = {
            "users": args.users,
            "conversations": len(convs),
            "minutes": args.minutes,
            "sent": stats.sent,
            "acked": stats.acked,
            "not_acked": stats.failed,
            "retries": dict(stats.retried),
            "terminal_closes": stats.terminal_closes,
            **result,
            "chaos": dict(stats.chaos),
            "wall_s": round(elapsed),
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}",
        }
        print()
        for key, value in summary.items():
            print(f"{key:>20}: {value}")
        bad = result["lost"] + result["duplicated"] + result["convs_with_gaps"] + result["ack_conflicts"]
        return 1 if bad or result["copies_differing"] else 0
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
        for node in nodes:
            node.stop()
        redis.stop()
        pg.destroy()
        servers.cleanup_template()


async def report(stats: Stats, until: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(30)
        left = max(0, until - loop.time())
        log(f"sent {stats.sent}, acked {stats.acked}, not acked {stats.failed}; {left:.0f} s to go")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second, all users together")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--chaos-every", type=float, default=30.0, help="seconds between faults (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
