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
    """(CPU seconds, RSS bytes) of a process (RSS 0 once it has exited: a zombie has no VmRSS)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    with open(f"/proc/{pid}/status") as f:
        rss = next((int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:")), 0)
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


def pin(pid: int, cores: set[int] | None) -> None:
    """Keep a process (and what it forks later: PostgreSQL's backends) on ``cores``; None leaves it free."""
    if cores:
        os.sched_setaffinity(pid, cores)


class Cluster:
    """``async with Cluster(nodes=2, env={...}) as c``: seed through ``c.storage`` in ``setup``, then nodes run.

    ``embedded=True`` is the single node of ``hubbub serve``'s defaults instead (SQLite in its data dir,
    in-process routing; no Redis, no PostgreSQL), seeded the same way, for like-for-like comparisons.
    ``cores`` pins every server process (nodes, Redis, PostgreSQL); ``src`` serves another copy of the code
    (a ``src/`` directory put first on the nodes' PYTHONPATH) for A/B runs.
    """

    def __init__(
        self,
        nodes: int,
        env: dict[str, str] | None = None,
        *,
        embedded: bool = False,
        cores: set[int] | None = None,
        src: Path | None = None,
    ) -> None:
        self.count = 1 if embedded else nodes
        self.embedded = embedded
        self.cores = cores
        self.src = src
        self.secret = secrets.token_urlsafe(32)
        self.extra_env = env or {}
        self.procs: list[subprocess.Popen[bytes]] = []
        self.urls: list[str] = []
        self.tmp = tempfile.mkdtemp(prefix="hubbub-bench-")
        self.redis_server: servers.RedisServer | None = None
        self.pg: servers.PostgresServer | None = None

    async def start(self, setup: Any = None) -> Cluster:
        self.env = {**os.environ, **BENCH_ENV, "HUBBUB_JWT_SECRET": self.secret, **self.extra_env}
        if self.src is not None:  # first, before what this process was given (an extra package dir, say)
            inherited = self.env.get("PYTHONPATH", "")
            self.env["PYTHONPATH"] = str(self.src.resolve()) + (":" + inherited if inherited else "")
        if self.embedded:
            for name in ("HUBBUB_REDIS", "HUBBUB_DATABASE"):
                self.env.pop(name, None)
            data_dir = os.path.join(self.tmp, "n1")
            migrate = ["--data-dir", data_dir]
            storage_url = f"sqlite+aiosqlite:///{Path(data_dir).resolve() / 'hubbub.db'}"
        else:
            self.redis_server = servers.RedisServer().start()
            self.pg = servers.PostgresServer().start()
            database = self.pg.create_database("bench")
            self.env.update(HUBBUB_REDIS=self.redis_server.url, HUBBUB_DATABASE=database)
            migrate = []
            storage_url = "postgresql+asyncpg://" + database.split("://", 1)[1]
            assert self.redis_server.proc is not None
            pin(self.redis_server.proc.pid, self.cores)
            for pid in self.pg_pids():
                pin(pid, self.cores)
        subprocess.run(
            [sys.executable, "-m", "hubbub", "migrate", *migrate],
            env=self.env,
            check=True,
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
        )
        if setup is not None:
            storage = SqlStorage(storage_url)
            try:
                await setup(storage)
            finally:
                await storage.close()
        for n in range(self.count):
            port = servers.free_port()
            log = open(os.path.join(self.tmp, f"n{n + 1}.log"), "wb")
            node = [] if self.embedded else ["--node-id", f"n{n + 1}"]
            proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "hubbub", "serve", "--port", str(port), *node),
                    *("--data-dir", os.path.join(self.tmp, f"n{n + 1}")),
                ],
                env=self.env,
                cwd=self.tmp,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            pin(proc.pid, self.cores)
            self.procs.append(proc)
            self.urls.append(f"http://127.0.0.1:{port}")
        if self.redis_server is not None:
            self.redis = aioredis.Redis.from_url(self.redis_server.url)
        async with aiohttp.ClientSession() as http:
            for url in self.urls:
                deadline = time.monotonic() + 180  # a loaded shared machine starts nodes slowly
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
        return self.redis_cpu_seconds() + self.pg_cpu_seconds()

    def redis_cpu_seconds(self) -> float:
        if self.redis_server is None or self.redis_server.proc is None:
            return 0.0
        return proc_stats(self.redis_server.proc.pid)[0]

    def pg_cpu_seconds(self) -> float:
        """The postmaster and its children (backends, background workers) now alive."""
        total = 0.0
        for pid in self.pg_pids():
            try:
                total += proc_stats(pid)[0]
            except OSError:
                continue  # a backend that just exited
        return total

    def pg_pids(self) -> list[int]:
        if self.pg is None:
            return []
        with open(os.path.join(self.pg.data, "postmaster.pid")) as f:
            postmaster = int(f.readline())
        pids = [postmaster]
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if ppid == postmaster:
                    pids.append(int(entry))
        return pids

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
        if self.redis_server is not None:
            await self.redis.aclose()
            self.redis_server.stop()
        if self.pg is not None:
            self.pg.destroy()
            servers.cleanup_template()
