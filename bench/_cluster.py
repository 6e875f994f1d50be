"""A throwaway Hubbub cluster for benchmarks: its own Redis and PostgreSQL, N node processes, seeded users.

Shared by bench/hot_groups.py and bench/cluster.py (and the seeding by bench/group_fanout.py). Users and
sessions go straight into the database: registering thousands through the API would measure argon2.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import servers  # noqa: E402

from hubbub.core.clock import now_ms  # noqa: E402
from hubbub.engines.storage import schema as t  # noqa: E402
from hubbub.engines.storage.sql import SqlStorage  # noqa: E402

#: Keeps rate and connection limits out of the measurement: thousands of clients share one address.
BENCH_ENV = {
    "HUBBUB_SEND_RATE": "100000",
    "HUBBUB_SEND_BURST": "100000",
    "HUBBUB_LOG_LEVEL": "warning",
    "HUBBUB_IP_LIMIT_EXEMPT": "127.0.0.0/8",
    "HUBBUB_MAX_WS_PER_IP": "100000",
}


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return cpu, rss


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    """A node's /metrics as {series: value}."""
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def redis_calls(client: aioredis.Redis) -> int:
    """Commands the Redis server has run (all clients), from INFO commandstats."""
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def seed_users(storage: SqlStorage, count: int, sessions: int) -> None:
    """Users u0..u{count-1} (ids 1..count) and a session ``s<id>`` for each of the first ``sessions``."""
    now = now_ms()
    rows = [
        {
            "username": f"u{i}",
            "username_lower": f"u{i}",
            "nickname": f"u{i}",
            "signature": "",
            "password_hash": "x",
            "banned": False,
            "created_at": now,
        }
        for i in range(count)
    ]
    async with storage.writer.begin() as conn:
        for start in range(0, len(rows), 2000):
            await conn.execute(t.users.insert(), rows[start : start + 2000])
        await conn.execute(
            t.sessions.insert(),
            [
                {"sid": f"s{uid}", "user_id": uid, "revoked": False, "created_at": now}
                for uid in range(1, sessions + 1)
            ],
        )


def token(secret: str, uid: int) -> str:
    """An access token for a seeded user, signed with the cluster's shared secret."""
    claims = {"sub": str(uid), "sid": f"s{uid}", "exp": int(time.time()) + 3600}
    return jwt.encode(claims, secret, algorithm="HS256")


class Cluster:
    """``async with Cluster(nodes=2, env={...}) as c``: seed through ``c.storage`` in ``setup``, then nodes run."""

    def __init__(self, nodes: int, env: dict[str, str] | None = None) -> None:
        self.count = nodes
        self.secret = secrets.token_urlsafe(32)
        self.extra_env = env or {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.tmp = tempfile.mkdtemp(prefix="hubbub-bench-")

    async def start(self, setup: Any = None) -> Cluster:
        self.redis_server = servers.RedisServer().start()
        self.pg = servers.PostgresServer().start()
        database = self.pg.create_database("bench")
        self.env = {
            **os.environ,
            **BENCH_ENV,
            "HUBBUB_JWT_SECRET": self.secret,
            "HUBBUB_REDIS": self.redis_server.url,
            "HUBBUB_DATABASE": database,
            **self.extra_env,
        }
        subprocess.run(
            [sys.executable, "-m", "hubbub", "migrate"],
            env=self.env,
            check=True,
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
        )
        if setup is not None:
            storage = SqlStorage("postgresql+asyncpg://" + database.split("://", 1)[1])
            try:
                await setup(storage)
            finally:
                await storage.close()
        for n in range(self.count):
            port = servers.free_port()
            log = open(os.path.join(self.tmp, f"n{n + 1}.log"), "wb")
            self.procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hubbub",
                        "serve",
                        "--port",
                        str(port),
                        "--node-id",
                        f"n{n + 1}",
                        "--data-dir",
                        os.path.join(self.tmp, f"n{n + 1}"),
                    ],
                    env=self.env,
                    cwd=self.tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                )
            )
            self.urls.append(f"http://127.0.0.1:{port}")
        self.redis = aioredis.Redis.from_url(self.redis_server.url)
        async with aiohttp.ClientSession() as http:
            for url in self.urls:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        async with http.get(url + "/readyz") as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} did not get ready; logs in {self.tmp}")
                    await asyncio.sleep(0.1)
        return self

    def cpu_seconds(self) -> float:
        return sum(proc_stats(p.pid)[0] for p in self.procs)

    def backing_cpu_seconds(self) -> float:
        """CPU seconds of Redis and of every PostgreSQL process (postmaster and backends) so far."""
        pids = [self.redis_server.proc.pid] if self.redis_server.proc is not None else []
        with open(os.path.join(self.pg.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid == postmaster:
                    pids.append(int(entry))
        total = 0.0
        for pid in [postmaster, *pids]:
            try:
                total += proc_stats(pid)[0]
            except OSError:
                continue  # a backend that just exited
        return total

    def rss_bytes(self) -> int:
        return sum(proc_stats(p.pid)[1] for p in self.procs)

    async def metric_delta(
        self, http: aiohttp.ClientSession, before: Sequence[dict[str, float]], name: str
    ) -> float:
        after = [await scrape(http, u) for u in self.urls]
        return sum(a.get(name, 0) - b.get(name, 0) for a, b in zip(after, before, strict=True))

    async def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        await self.redis.aclose()
        self.redis_server.stop()
        self.pg.destroy()
        servers.cleanup_template()
