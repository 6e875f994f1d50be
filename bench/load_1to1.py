"""1:1 load benchmark: Hubbub's private-message path against a bare aiohttp WebSocket echo.

The servers run as real processes pinned to core 0 (``taskset -c 0``); this load generator pins itself to
core 1 and drives them with picows clients speaking docs/protocol.md. Phases, in one run:

  echo     bare aiohttp echo, same clients and window: the ceiling (round trips/s)
  setup    register users over HTTP in parallel, make pairs friends (request + accept)
  memory   RSS of the server before and after N idle authenticated connections
  peak     closed loop: each of C clients keeps W unacked sends in flight to its peer; a message counts when
           it is acknowledged to the sender and delivered to the peer (send -> stored -> ack -> push)
  latency  open loop at half the peak rate (or --rate): ack and delivery latency p50/p99
CPU per 1,000 messages comes from the server's /proc/PID/stat (utime+stime) over each measured window.

    .venv/bin/python bench/load_1to1.py            # full run, about 2 minutes
    .venv/bin/python bench/load_1to1.py --quick    # under a minute, smaller sizes
See docs/benchmarks.md for the figures and the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp

from _procs import (
    FAST_ENV,
    ServerProcess,
    core_busy_seconds,
    echo_argv,
    free_port,
    hubbub_argv,
    pin_self,
    raise_nofile,
    self_cpu_seconds,
)
from _ws import Peer, Recorder, connect_many, keepalive

PASSWORD = "bench-password-1"

# Targets from issue 2.
TARGET_RATE = 10_000
TARGET_P99_MS = 50.0
TARGET_IDLE_KIB = 16.0

SERVER_CORE = 0  # set from --server-core
CLIENT_CORE = 1
QUIET_WAIT = 0.0  # --wait-quiet


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- measuring ---------------------------------------------------------------------------------------
class Window:
    """Counters, server CPU and client CPU between two instants."""

    def __init__(self, rec: Recorder, server: ServerProcess, core: int = 0) -> None:
        self.rec, self.server, self.core = rec, server, core

    def __enter__(self) -> Window:
        self.t0 = time.monotonic()
        self.c0 = self.rec.snapshot()
        self.s0 = self.server.cpu_seconds()
        self.l0 = self_cpu_seconds()
        self.b0 = core_busy_seconds(self.core)
        self.rec.clear_samples()
        self.rec.recording = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self.rec.recording = False
        self.elapsed = time.monotonic() - self.t0
        c1 = self.rec.snapshot()
        self.sent, self.acked, self.delivered = (b - a for a, b in zip(self.c0, c1, strict=True))
        self.server_cpu = self.server.cpu_seconds() - self.s0
        self.client_cpu = self_cpu_seconds() - self.l0
        # Whatever else ran on the server's core (other processes on a shared machine) skews every figure.
        self.other_cpu = max(0.0, core_busy_seconds(self.core) - self.b0 - self.server_cpu)

    @property
    def rate(self) -> float:
        """Messages completed end to end per second: both acknowledged and delivered."""
        return min(self.acked, self.delivered) / self.elapsed

    def summary(self) -> dict[str, Any]:
        done = max(1, min(self.acked, self.delivered))
        return {
            "seconds": round(self.elapsed, 2),
            "sent": self.sent,
            "acked": self.acked,
            "delivered": self.delivered,
            "rate": round(self.rate),
            "server_cpu_util": round(self.server_cpu / self.elapsed, 3),
            "client_cpu_util": round(self.client_cpu / self.elapsed, 3),
            "others_on_server_core": round(self.other_cpu / self.elapsed, 3),
            "server_cpu_s_per_1000": round(self.server_cpu / done * 1000, 4),
            "ack_ms": percentiles(self.rec.ack_ns),
            "delivery_ms": percentiles(self.rec.delivery_ns),
        }


def percentiles(samples_ns: list[int]) -> dict[str, float]:
    if not samples_ns:
        return {}
    s = sorted(samples_ns)

    def at(q: float) -> float | str:
        return round(s[min(len(s) - 1, int(q * len(s)))] / 1e6, 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999), "max": at(1.0), "n": len(s)}


async def drain(rec: Recorder, peers: list[Peer], expect_delivery: bool, timeout: float = 15.0) -> bool:
    """Wait until every send is acked (and delivered): the next phase starts from a quiet server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = sum(len(p.pending) for p in peers)
        undelivered = rec.sent - rec.errors - rec.delivered if expect_delivery else 0
        if pending == 0 and undelivered <= 0:
            return True
        await asyncio.sleep(0.05)
    return False


async def wait_quiet(max_wait: float) -> float:
    """On a shared machine, wait (up to ``max_wait`` s) for a second in which other processes use under 10%
    of the two bench cores; returns what they used in the last second sampled (0.0-2.0 cores)."""
    cores = sorted({SERVER_CORE, CLIENT_CORE})
    deadline = time.monotonic() + max_wait
    while True:
        b0 = sum(core_busy_seconds(c) for c in cores)
        await asyncio.sleep(1.0)
        used = sum(core_busy_seconds(c) for c in cores) - b0
        if used < 0.1 or time.monotonic() >= deadline:
            if used >= 0.1:
                log(f"machine still busy ({used:.0%} of a core used by others); measuring anyway")
            return used


async def closed_loop(
    rec: Recorder,
    server: ServerProcess,
    peers: list[Peer],
    window: int,
    warmup: float,
    duration: float,
    on_start: Callable[[], None] | None = None,
) -> Window:
    if QUIET_WAIT:
        await wait_quiet(QUIET_WAIT)
    if on_start is not None:
        on_start()
    for p in peers:
        p.window = window
    for _ in range(window):
        for p in peers:
            p.send_one()
    await asyncio.sleep(warmup)
    with Window(rec, server, SERVER_CORE) as w:
        await asyncio.sleep(duration)
    for p in peers:
        p.window = 0
    return w


async def open_loop(
    rec: Recorder,
    server: ServerProcess,
    peers: list[Peer],
    rate: float,
    warmup: float,
    duration: float,
    on_start: Callable[[], None] | None = None,
) -> Window:
    """Paced sends at ``rate`` messages/s in total, round robin over the clients, not waiting for acks."""
    if QUIET_WAIT:
        await wait_quiet(QUIET_WAIT)
    if on_start is not None:
        on_start()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n = 0
    i = 0
    count = len(peers)

    # Ticks of 1-10 ms, each sending what is due: the client sleeps between them instead of spinning, so its
    # CPU is its sends and receives (reported beside every figure), and it never is the bottleneck.
    tick = max(0.001, min(0.01, 1.0 / rate))

    async def pace(until: float) -> None:
        nonlocal n, i
        while (now := loop.time()) < until:
            due = int((now - t0) * rate)
            while n < due:
                peers[i].send_one()
                i = (i + 1) % count
                n += 1
            await asyncio.sleep(tick)

    await pace(t0 + warmup)
    with Window(rec, server, SERVER_CORE) as w:
        await pace(t0 + warmup + duration)
    return w


# -- setup over HTTP --------------------------------------------------------------------------------
async def register_users(base: str, count: int, parallel: int = 64) -> list[tuple[int, str]]:
    gate = asyncio.Semaphore(parallel)
    out: list[tuple[int, str]] = [(0, "")] * count
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel)) as http:

        async def one(i: int) -> None:
            async with gate:
                body = {"username": f"bench{i}", "password": PASSWORD}
                async with http.post(f"{base}/api/v1/auth/register", json=body) as r:
                    data = await r.json()
                    if r.status != 201:
                        raise RuntimeError(f"register failed: {r.status} {data}")
                out[i] = (data["user"]["id"], data["access_token"])

        await asyncio.gather(*(one(i) for i in range(count)))
    return out


async def befriend_pairs(base: str, users: list[tuple[int, str]], pairs: int, parallel: int = 64) -> None:
    gate = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=parallel)) as http:

        async def one(k: int) -> None:
            (_a, ta), (b, tb) = users[2 * k], users[2 * k + 1]
            async with gate:
                async with http.post(
                    f"{base}/api/v1/friends/requests",
                    json={"to": b},
                    headers={"Authorization": f"Bearer {ta}"},
                ) as r:
                    req = await r.json()
                    if r.status != 201:
                        raise RuntimeError(f"friend request failed: {r.status} {req}")
                async with http.post(
                    f"{base}/api/v1/friends/requests/{req['id']}/accept",
                    headers={"Authorization": f"Bearer {tb}"},
                ) as r:
                    if r.status != 200:
                        raise RuntimeError(f"accept failed: {r.status} {await r.text()}")

        await asyncio.gather(*(one(k) for k in range(pairs)))


def close_all(peers: list[Peer]) -> None:
    for p in peers:
        p.close()


# -- phases -----------------------------------------------------------------------------------------
async def run_echo(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    server = ServerProcess("echo", echo_argv(port), port, args.server_core, workdir / "echo.log")
    try:
        server.wait_ready()
        rec = Recorder()
        log(f"echo: connecting {args.clients} clients")
        peers = await connect_many(f"ws://127.0.0.1:{port}/ws", rec, args.clients, echo=True)
        log(f"echo: window {args.window}, {args.warmup}s warmup + {args.duration}s")
        w = await closed_loop(rec, server, peers, args.window, args.warmup, args.duration)
        await drain(rec, peers, expect_delivery=False)
        close_all(peers)
        await asyncio.sleep(0.5)
        result = w.summary()
        if args.idle:  # the library's own floor for an idle WebSocket, to compare Hubbub's figure with
            rec = Recorder()
            before = server.rss_kib()
            idle = await connect_many(f"ws://127.0.0.1:{port}/ws", rec, args.idle, echo=True)
            await asyncio.sleep(2.0)
            after = server.rss_kib()
            result["idle_kib_per_conn"] = round((after - before) / args.idle, 2)
            close_all(idle)
            await asyncio.sleep(0.5)
        log(f"echo: {result['rate']:,} round trips/s (server cpu {result['server_cpu_util']:.0%})")
        return result
    finally:
        server.stop()


async def run_hubbub(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    data_dir = workdir / "hubbub-data"
    env = dict(FAST_ENV)
    if args.src:  # run another copy of the code (a snapshot, or a patched scratch copy) instead
        env["PYTHONPATH"] = str(args.src.resolve())
    server = ServerProcess(
        "hubbub", hubbub_argv(port, data_dir), port, args.server_core, workdir / "hubbub.log", env
    )
    out: dict[str, Any] = {"server_pid": server.pid}
    base = f"http://127.0.0.1:{port}"
    url = f"ws://127.0.0.1:{port}/ws"
    try:
        server.wait_ready()
        pairs = args.clients // 2
        n_users = max(args.idle, 2 * pairs)
        t = time.monotonic()
        users = await register_users(base, n_users)
        await befriend_pairs(base, users, pairs)
        log(f"setup: {n_users} users, {pairs} friend pairs in {time.monotonic() - t:.1f}s")
        tokens = [tok for _, tok in users]
        ids = [uid for uid, _ in users]

        # -- memory per idle authenticated connection (terminal "desktop", so the later "web" ones are
        #    separate slots and nothing is replaced)
        if args.idle:
            rec = Recorder()
            if QUIET_WAIT:
                await wait_quiet(QUIET_WAIT)
            warm = min(20, args.idle)
            first = await connect_many(url, rec, warm, tokens=tokens[:warm], terminal="desktop")
            await asyncio.sleep(1.0)
            before = server.rss_kib()
            t = time.monotonic()
            rest = await connect_many(
                url, rec, args.idle - warm, tokens=tokens[warm : args.idle], terminal="desktop"
            )
            connect_s = time.monotonic() - t
            await asyncio.sleep(2.0)
            after = server.rss_kib()
            alive = sum(not p.gone for p in first + rest)
            n_new = len(rest)
            out["memory"] = {
                "connections": alive,
                "rss_before_kib": before,
                "rss_after_kib": after,
                "kib_per_conn": round((after - before) / max(1, n_new), 2),
                "connect_auth_per_s": round(n_new / connect_s),
            }
            log(f"memory: {out['memory']}")
            close_all(first + rest)
            await asyncio.sleep(2.0)

        # -- peak 1:1 throughput, closed loop
        rec = Recorder()
        targets = [ids[i + 1] if i % 2 == 0 else ids[i - 1] for i in range(2 * pairs)]
        log(f"peak: connecting {2 * pairs} clients ({pairs} pairs)")
        peers = await connect_many(url, rec, 2 * pairs, tokens=tokens[: 2 * pairs], targets=targets)
        pinger = asyncio.get_running_loop().create_task(keepalive(peers))
        await asyncio.sleep(0.5)
        log(f"peak: window {args.window}, {args.warmup}s warmup + {args.duration}s")
        w = await closed_loop(
            rec,
            server,
            peers,
            args.window,
            args.warmup,
            args.duration,
            profiler("peak", server, args, workdir),
        )
        drained = await drain(rec, peers, expect_delivery=True)
        peak = w.summary()
        peak["drained"] = drained
        out["peak"] = peak
        log(
            f"peak: {peak['rate']:,} msg/s (server cpu {peak['server_cpu_util']:.0%}, "
            f"client cpu {peak['client_cpu_util']:.0%})"
        )

        # -- latency at half the peak rate, open loop
        rate = args.rate or max(1.0, peak["rate"] / 2)
        log(f"latency: {rate:,.0f} msg/s paced, {args.warmup}s warmup + {args.duration}s")
        w = await open_loop(
            rec, server, peers, rate, args.warmup, args.duration, profiler("latency", server, args, workdir)
        )
        drained = await drain(rec, peers, expect_delivery=True)
        lat = w.summary()
        lat["target_rate"] = round(rate)
        lat["drained"] = drained
        out["latency"] = lat
        log(f"latency: ack {lat['ack_ms']} delivery {lat['delivery_ms']}")

        # -- latency curve: the same open loop at fractions of the measured peak
        if args.curve:
            curve = []
            for pct in args.curve:
                r = max(1.0, peak["rate"] * pct / 100)
                log(f"curve: {pct}% of peak, {r:,.0f} msg/s paced")
                w = await open_loop(rec, server, peers, r, args.warmup, args.duration)
                await drain(rec, peers, expect_delivery=True, timeout=120)  # a starved server has a backlog
                point = w.summary()
                point["percent_of_peak"] = pct
                point["target_rate"] = round(r)
                curve.append(point)
                log(f"curve {pct}%: delivery {point['delivery_ms']}")
            out["curve"] = curve

        out["totals"] = {
            "sent": rec.sent,
            "acked": rec.acked,
            "delivered": rec.delivered,
            "errors": rec.errors,
            "error_codes": rec.error_codes,
            "closed_by_server": rec.closed,
        }
        pinger.cancel()
        close_all(peers)
        await asyncio.sleep(0.2)
        return out
    finally:
        server.stop()


def profiler(
    phase: str, server: ServerProcess, args: argparse.Namespace, workdir: Path
) -> Callable[[], None] | None:
    """The hook that starts py-spy on the server when ``phase`` begins, if --profile asked for it."""
    if args.profile != phase:
        return None
    return lambda: profile_in_background(
        server.pid, args.warmup + 0.5, args.duration - 1, workdir, native=args.profile_native
    )


def profile_in_background(pid: int, delay: float, seconds: float, workdir: Path, native: bool) -> None:
    """py-spy the server during the peak window (needs root or ptrace rights); output beside the logs."""
    import subprocess

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = workdir / "profile.txt"
    cmd = (
        f"sleep {delay:.1f}; exec {spy} record --pid {pid} --duration {max(1, int(seconds))} "
        f"--format raw --rate 200 {'--native' if native else '--nonblocking'} -o {workdir / 'profile.raw'} > {out} 2>&1"
    )
    subprocess.Popen(["sh", "-c", cmd])
    log(f"profiling the server into {workdir / 'profile.raw'} (summary: bench/profile_top.py)")


# -- report -----------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    except OSError:
        mem_kib = 0
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "ram_gib": round(mem_kib / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def table(res: dict[str, Any]) -> str:
    echo, hub = res.get("echo", {}), res.get("hubbub", {})
    peak, lat, mem = hub.get("peak", {}), hub.get("latency", {}), hub.get("memory", {})
    rows: list[tuple[str, str, str]] = []
    if echo:
        rows.append(("bare aiohttp echo, round trips/s (ceiling)", f"{echo['rate']:,}", ""))
        rows.append(
            (
                "  other processes on the server's core",
                f"{echo['others_on_server_core']:.0%}",
                "quiet" if echo["others_on_server_core"] < 0.05 else "NOISY: figures are low",
            )
        )
        if "idle_kib_per_conn" in echo:
            rows.append(
                ("  echo server memory per idle connection, KiB", f"{echo['idle_kib_per_conn']:.1f}", "")
            )
    if peak:
        rows.append(
            (
                "Hubbub 1:1 msg/s, stored+acked+delivered",
                f"{peak['rate']:,}",
                f"≥{TARGET_RATE:,}: {met(peak['rate'] >= TARGET_RATE)}",
            )
        )
        if echo:
            rows.append(("  as a fraction of the echo ceiling", f"{peak['rate'] / echo['rate']:.2f}", ""))
        rows.append(
            (
                "  server / client CPU during peak",
                f"{peak['server_cpu_util']:.0%} / {peak['client_cpu_util']:.0%}",
                "",
            )
        )
        rows.append(
            (
                "  other processes on the server's core",
                f"{peak['others_on_server_core']:.0%}",
                "quiet" if peak["others_on_server_core"] < 0.05 else "NOISY: figures are low",
            )
        )
        rows.append(
            ("  ack p50 / p99 at peak (ms)", f"{peak['ack_ms'].get('p50')} / {peak['ack_ms'].get('p99')}", "")
        )
        rows.append(("server CPU s per 1,000 msgs (peak)", f"{peak['server_cpu_s_per_1000']:.3f}", ""))
    if lat:
        rows.append(
            ("latency run: paced rate, achieved msg/s", f"{lat['target_rate']:,} / {lat['rate']:,}", "")
        )
        rows.append(
            ("  ack latency p50 / p99 (ms)", f"{lat['ack_ms'].get('p50')} / {lat['ack_ms'].get('p99')}", "")
        )
        p99 = lat["delivery_ms"].get("p99", float("inf"))
        rows.append(
            (
                "  delivery latency p50 / p99 (ms)",
                f"{lat['delivery_ms'].get('p50')} / {p99}",
                f"p99<{TARGET_P99_MS:g}: {met(p99 < TARGET_P99_MS)}",
            )
        )
        rows.append(("server CPU s per 1,000 msgs (half rate)", f"{lat['server_cpu_s_per_1000']:.3f}", ""))
        rows.append(
            (
                "  server / client CPU during the paced run",
                f"{lat['server_cpu_util']:.0%} / {lat['client_cpu_util']:.0%}",
                "",
            )
        )
        rows.append(
            (
                "  other processes on the server's core",
                f"{lat['others_on_server_core']:.0%}",
                "quiet" if lat["others_on_server_core"] < 0.05 else "NOISY: figures are low",
            )
        )
    if mem:
        rows.append(
            (
                f"memory per idle authed conn ({mem['connections']:,} conns), KiB",
                f"{mem['kib_per_conn']:.1f}",
                f"≤{TARGET_IDLE_KIB:g}: {met(mem['kib_per_conn'] <= TARGET_IDLE_KIB)}",
            )
        )
        rows.append(
            (
                "  server RSS before / after (MiB)",
                f"{mem['rss_before_kib'] / 1024:.1f} / {mem['rss_after_kib'] / 1024:.1f}",
                "",
            )
        )
    for point in hub.get("curve", []):
        d = point["delivery_ms"]
        rows.append(
            (
                f"curve {point['percent_of_peak']}% of peak: achieved msg/s, delivery p50 / p99 (ms)",
                f"{point['rate']:,}  {d.get('p50')} / {d.get('p99')}",
                f"CPU s/1k {point['server_cpu_s_per_1000']:.3f}; server / client CPU "
                f"{point['server_cpu_util']:.0%} / {point['client_cpu_util']:.0%}; "
                f"others on server core {point['others_on_server_core']:.0%}",
            )
        )
    tot = hub.get("totals")
    if tot:
        lost = tot["sent"] - tot["errors"] - tot["delivered"]
        rows.append(
            (
                "sent / acked / delivered / errors",
                f"{tot['sent']:,} / {tot['acked']:,} / {tot['delivered']:,} / {tot['errors']}",
                "ok" if lost == 0 and tot["acked"] + tot["errors"] == tot["sent"] else "MISMATCH",
            )
        )
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    lines = [f"{'metric':<{w1}}  {'value':>{w2}}  target", "-" * (w1 + w2 + 24)]
    lines += [f"{a:<{w1}}  {b:>{w2}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="hubbub-1to1-"))
    log(f"work dir {workdir}")
    res: dict[str, Any] = {"machine": machine(), "args": vars(args), "workdir": str(workdir)}
    if not args.no_echo:
        res["echo"] = await run_echo(args, workdir)
    if not args.echo_only:
        res["hubbub"] = await run_hubbub(args, workdir)
    if not args.keep:
        shutil.rmtree(workdir / "hubbub-data", ignore_errors=True)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, default=1000, help="connections in the 1:1 phases (pairs = /2)")
    p.add_argument("--window", type=int, default=8, help="unacked sends in flight per client (closed loop)")
    p.add_argument(
        "--idle", type=int, default=5000, help="idle authenticated connections for the memory phase"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per phase")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds before each measured window")
    p.add_argument("--rate", type=float, default=0, help="latency phase rate (default: half the peak)")
    p.add_argument(
        "--curve",
        type=lambda v: [int(x) for x in v.split(",")],
        default=None,
        metavar="PCTS",
        help="after the peak, a paced run at each of these percentages of it, e.g. 10,25,50,75",
    )
    p.add_argument("--quick", action="store_true", help="small and short: 200 clients, 1000 idle, 4 s phases")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--no-echo", action="store_true", help="skip the echo ceiling")
    p.add_argument("--echo-only", action="store_true")
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0,
        metavar="S",
        help="before each phase wait up to S s for the machine to be idle (shared machines)",
    )
    p.add_argument("--profile", choices=["peak", "latency"], help="py-spy record the server in that phase")
    p.add_argument("--profile-native", action="store_true", help="with --profile: C frames too (slow)")
    p.add_argument("--src", type=Path, help="serve hubbub from this src/ dir (PYTHONPATH) for A/B runs")
    p.add_argument("--keep", action="store_true", help="keep the server's data dir")
    p.add_argument("--json", type=Path, help="also write every figure to this file")
    args = p.parse_args()
    if args.quick:
        args.clients, args.idle, args.duration, args.warmup = 200, 1000, 4.0, 1.5
    global SERVER_CORE, CLIENT_CORE, QUIET_WAIT
    SERVER_CORE, CLIENT_CORE, QUIET_WAIT = args.server_core, args.client_core, args.wait_quiet
    if not pin_self(args.client_core):
        log("warning: fewer than 2 cores, the load generator is not pinned apart from the server")
    raise_nofile(args.idle + args.clients + 1000)
    try:
        import uvloop

        res = uvloop.run(main_async(args))
    except ImportError:
        res = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2, default=str))
    m = res["machine"]
    print(f"\nmachine: {m['nproc']} cores, {m['cpu']}, {m['ram_gib']} GiB RAM, Python {m['python']}")
    print(
        f"server on core {args.server_core}, load on core {args.client_core}; "
        f"{args.clients} clients, window {args.window}, {args.duration:g} s windows\n"
    )
    print(table(res))


if __name__ == "__main__":
    main()
