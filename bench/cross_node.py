"""CPU per 1:1 message across nodes, like for like (issue 19, target 4).

CPU per message grows as batches shrink, so a cross-node figure means something only beside the single-node
one **at the same message rate**. For each configuration this starts its own servers, seeds users in pairs
of friends, connects every user (picows clients, bench/_ws.py), and measures a closed-loop peak, then open
loop (paced, no spinning) at each ``--rates`` rate:

  embedded  one ``hubbub serve`` with its defaults: SQLite, in-process routing (no Redis, no PostgreSQL)
  1node     one node on the cluster engines (Redis, PostgreSQL); every pair on that node
  2nodes    two nodes; every pair split across them, so every message crosses nodes

Every server process (nodes, Redis, PostgreSQL) is pinned to ``--server-cores`` (core 0), this load generator
to ``--client-core`` (core 1). Reported per window: achieved msg/s (acked and delivered), the nodes' CPU
seconds per 1,000 messages (all nodes together), Redis's and PostgreSQL's apart, Redis commands per message,
delivery p50/p99, this load generator's CPU (% of its core: it must never be the bottleneck), and the load
average. "x embedded" divides the node CPU by the embedded figure of the same phase in the same run.

    .venv/bin/python bench/cross_node.py                            # all three, peak + 1,000 and 3,000 msg/s
    .venv/bin/python bench/cross_node.py --configs 2nodes --rates 1000 --profile 1000   # py-spy both nodes
    .venv/bin/python bench/cross_node.py --src /tmp/xbase/src       # A/B: serve another copy of the code
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import Cluster, redis_calls, seed_users, token
from _procs import pin_self, raise_nofile, self_cpu_seconds
from _ws import Peer, Recorder, connect_many, keepalive
from hubbub.core.clock import now_ms
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.sql import SqlStorage

CONFIGS = {"embedded": 0, "1node": 1, "2nodes": 2}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Window:
    """Counters and every process's CPU between two instants."""

    def __init__(self, rec: Recorder, cluster: Cluster) -> None:
        self.rec, self.cluster = rec, cluster

    async def _redis_calls(self) -> int:
        return 0 if self.cluster.embedded else await redis_calls(self.cluster.redis)

    async def start(self) -> Window:
        c = self.cluster
        self.load0 = os.getloadavg()[0]
        self.cmds0 = await self._redis_calls()
        self.t0 = time.monotonic()
        self.c0 = self.rec.snapshot()
        self.cpu0 = (c.cpu_seconds(), c.redis_cpu_seconds(), c.pg_cpu_seconds(), self_cpu_seconds())
        self.rec.clear_samples()
        self.rec.recording = True
        return self

    async def stop(self) -> dict[str, Any]:
        c = self.cluster
        self.rec.recording = False
        elapsed = time.monotonic() - self.t0
        cpu1 = (c.cpu_seconds(), c.redis_cpu_seconds(), c.pg_cpu_seconds(), self_cpu_seconds())
        sent, acked, delivered = (b - a for a, b in zip(self.c0, self.rec.snapshot(), strict=True))
        cmds = await self._redis_calls() - self.cmds0
        nodes, redis, pg, gen = (b - a for a, b in zip(self.cpu0, cpu1, strict=True))
        done = max(1, min(acked, delivered))
        lat = sorted(self.rec.delivery_ns) or [0]
        return {
            "msgs/s": done / elapsed,
            "acked/sent": f"{acked}/{sent}",
            "delivered": delivered,
            "node CPU s/1k": 1000 * nodes / done,
            "redis CPU s/1k": 1000 * redis / done,
            "pg CPU s/1k": 1000 * pg / done,
            "redis cmds/msg": cmds / done,
            "p50 ms": lat[len(lat) // 2] / 1e6,
            "p99 ms": lat[min(len(lat) - 1, int(0.99 * len(lat)))] / 1e6,
            "loadgen CPU %": 100 * gen / elapsed,
            "node CPU %": 100 * nodes / elapsed,
            "load": f"{self.load0:.1f}-{os.getloadavg()[0]:.1f}",
        }


async def wait_while(path: Path | None) -> None:
    """The lead measures the embedded path in quiet windows it marks with a file: never overlap one."""
    if path is None or not path.exists():
        return
    log(f"{path} exists: waiting")
    while path.exists():
        await asyncio.sleep(5)


async def drain(rec: Recorder, peers: list[Peer], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(p.pending for p in peers) and rec.sent - rec.errors - rec.delivered <= 0:
            return True
        await asyncio.sleep(0.05)
    return False


class Pacer:
    """Open loop: ``rate`` sends per second in total, round robin over the clients, not waiting for acks. Ticks
    of 1-10 ms each send what is due and then sleep: the client never spins, so its CPU is its own sends and
    receives, and it is never the bottleneck."""

    def __init__(self, peers: list[Peer], rate: int) -> None:
        self.peers, self.rate = peers, rate
        self.tick = max(0.001, min(0.01, 1.0 / rate))
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.sent = self.next = 0

    async def run(self, seconds: float) -> None:
        until = self.loop.time() + seconds
        peers = self.peers
        while (now := self.loop.time()) < until:
            due = int((now - self.t0) * self.rate)
            while self.sent < due:
                peers[self.next].send_one()
                self.next = (self.next + 1) % len(peers)
                self.sent += 1
            await asyncio.sleep(self.tick)


def py_spy(pids: list[int], seconds: float, out: Path, gil: bool) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    procs = []
    for n, pid in enumerate(pids, 1):
        argv = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--format", "raw"]
        argv += ["--rate", "200", "--nonblocking", "-o", str(out.with_suffix(f".n{n}.raw"))]
        if gil:
            argv.append("--gil")
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


async def run_config(name: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    nodes = CONFIGS[name]
    users = 2 * args.pairs
    cluster = Cluster(
        nodes=nodes,
        embedded=nodes == 0,
        cores=set(args.server_cores),
        src=args.src,
        env={"HUBBUB_HOT_GROUP_THRESHOLD": str(10**9)},
    )

    async def setup(storage: SqlStorage) -> None:
        await seed_users(storage, users, users)
        now = now_ms()
        async with storage.writer.begin() as conn:
            await conn.execute(
                t.friendships.insert(),
                [
                    {"user_id": a, "friend_id": b, "since": now}
                    for x in range(1, users, 2)
                    for a, b in ((x, x + 1), (x + 1, x))
                ],
            )

    await cluster.start(setup)
    out: dict[str, dict[str, Any]] = {}
    rec = Recorder()
    peers: list[Peer] = []
    try:
        count = len(cluster.urls)
        for n, url in enumerate(cluster.urls):
            # Users i and i+1 are friends; with two nodes, user u is on node u % 2: every pair is split.
            uids = [u for u in range(1, users + 1) if u % count == n]
            peers += await connect_many(
                url.replace("http", "ws") + "/ws",
                rec,
                len(uids),
                tokens=[token(cluster.secret, u) for u in uids],
                targets=[u + 1 if u % 2 else u - 1 for u in uids],
            )
        pinger = asyncio.get_running_loop().create_task(keepalive(peers))
        # One message per user first, paced, so the per-user caches (friendship, blocks) are warm: a cold
        # start sends every first message to the database at once, a herd no steady state has.
        await Pacer(peers, 500).run(len(peers) / 500)
        if not await drain(rec, peers):
            log(f"{name}: priming did not drain")

        await wait_while(args.pause_while)
        log(f"{name}: peak, closed loop, window {args.window}")
        for p in peers:
            p.window = args.window
        for _ in range(args.window):
            for p in peers:
                p.send_one()
        await asyncio.sleep(args.warmup)
        w = await Window(rec, cluster).start()
        await asyncio.sleep(args.seconds)
        out["peak"] = await w.stop()
        for p in peers:
            p.window = 0
        if not await drain(rec, peers):
            log(f"{name}: peak did not drain")

        for rate in args.rates:
            await wait_while(args.pause_while)
            log(f"{name}: {rate:,} msg/s paced")
            spies = []
            if args.profile == rate:
                spies = py_spy(
                    [p.pid for p in cluster.procs],
                    args.seconds,
                    args.profile_out.with_suffix(f".{name}"),
                    args.gil,
                )
            pacer = Pacer(peers, rate)
            await pacer.run(args.warmup)
            w = await Window(rec, cluster).start()
            await pacer.run(args.seconds)
            out[f"{rate:,}/s"] = await w.stop()
            for spy in spies:
                spy.wait()
            if not await drain(rec, peers):
                log(f"{name}: {rate}/s did not drain")
        lost = rec.sent - rec.errors - rec.delivered
        if rec.errors or lost:
            log(f"{name}: {rec.errors} errors {rec.error_codes}, {lost} undelivered")
        pinger.cancel()
        return out
    finally:
        for p in peers:
            p.close()
        await asyncio.sleep(0.2)
        await cluster.stop()


def cores(text: str) -> list[int]:
    return [int(c) for c in text.split(",") if c != ""]


async def main_async(args: argparse.Namespace) -> None:
    table: list[tuple[str, str, dict[str, Any]]] = []
    for name in args.configs:
        log(f"{name}: starting ({2 * args.pairs} users)")
        for phase, row in (await run_config(name, args)).items():
            table.append((name, phase, row))
    embedded = {phase: row for name, phase, row in table if name == "embedded"}
    for _name, phase, row in table:
        base = embedded.get(phase)
        row["x embedded"] = row["node CPU s/1k"] / base["node CPU s/1k"] if base else float("nan")
    columns = list(table[0][2])
    print(f"\n{'':20}" + "".join(f"{c:>15}" for c in columns))
    for name, phase, row in table:
        cells = "".join(f"{v:>15.3f}" if isinstance(v, float) else f"{v:>15}" for v in row.values())
        print(f"{name + ' ' + phase:20}" + cells)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", type=lambda v: v.split(","), default=list(CONFIGS))
    p.add_argument("--rates", type=lambda v: [int(x) for x in v.split(",")], default=[1000, 3000])
    p.add_argument("--pairs", type=int, default=250, help="friend pairs (2 users each, all connected)")
    p.add_argument("--window", type=int, default=4, help="unacked sends per client at peak")
    p.add_argument("--seconds", type=float, default=8.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--server-cores", type=cores, default=[0], help="e.g. 0 or 0,1 ('' for unpinned)")
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--src", type=Path, help="serve hubbub from this src/ dir (PYTHONPATH), for A/B runs")
    p.add_argument("--profile", type=int, help="py-spy every node during the paced window at this rate")
    p.add_argument("--profile-out", type=Path, default=Path("/tmp/xnode-prof"))
    p.add_argument("--gil", action="store_true", help="with --profile: only samples holding the GIL")
    p.add_argument("--pause-while", type=Path, help="before each phase, wait while this file exists")
    args = p.parse_args()
    if not pin_self(args.client_core):
        log("warning: the load generator is not pinned")
    raise_nofile(4 * args.pairs + 1000)
    try:
        import uvloop

        uvloop.run(main_async(args))
    except ImportError:
        asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
