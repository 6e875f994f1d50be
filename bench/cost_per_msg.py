"""Server cost per 1:1 message at a LOW, paced rate: the fixed per-message / per-small-batch cost.

At peak the server amortises per-batch work over hundreds of messages; at low rate every message pays it
alone, and that is what users on a not-saturated server feel. This measures it three ways:

  cpu        server utime+stime per message over a paced window (default)
  callgrind  the server runs under ``valgrind --tool=callgrind``; instructions per message, counted only
             over the measured window (``callgrind_control -z`` / ``-d``): load-independent, so it can be
             compared between runs on a busy shared machine
  pyspy      py-spy samples the server over the paced window (summarise with bench/profile_top.py)
  cprofile   the server runs under cProfile; Python function calls per message, and a top list

An idle window of the same length (connections open, nothing sent) is measured first and subtracted.

    .venv/bin/python bench/cost_per_msg.py --rate 1200                  # CPU µs/msg at 1,200 msg/s
    .venv/bin/python bench/cost_per_msg.py --mode callgrind --rate 20 --clients 100 --duration 10
    .venv/bin/python bench/cost_per_msg.py --mode cprofile --rate 300
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _procs import FAST_ENV, ServerProcess, free_port, hubbub_argv, pin_self, raise_nofile, self_cpu_seconds
from _ws import Recorder, connect_many, keepalive
from load_1to1 import befriend_pairs, drain, register_users


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


async def pace(peers: list, rate: float, seconds: float) -> None:
    """Send ``rate`` msgs/s round robin for ``seconds``, sleeping between ticks (no spinning): each tick sends
    what is due, so the client's CPU is its sends and receives, not its clock."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    tick = max(0.001, min(0.01, 1.0 / rate))
    n = i = 0
    count = len(peers)
    while (now := loop.time()) < t0 + seconds:
        due = int((now - t0) * rate)
        while n < due:
            peers[i].send_one()
            i = (i + 1) % count
            n += 1
        await asyncio.sleep(tick)


def callgrind_ctl(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", *flag.split(), str(pid)], check=False, capture_output=True)


def callgrind_total(outdir: Path, pid: int) -> int:
    """Instructions (Ir) in the newest dump of ``pid``."""
    dumps = sorted(glob.glob(str(outdir / f"callgrind.out.{pid}*")), key=lambda p: Path(p).stat().st_mtime)
    for line in Path(dumps[-1]).read_text(errors="replace").splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError("no totals in callgrind dump")


async def run(args: argparse.Namespace) -> None:
    work = Path(tempfile.mkdtemp(prefix="hubbub-cost-"))
    port = free_port()
    env = dict(FAST_ENV)
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    argv = hubbub_argv(port, work / "data")
    if args.mode == "callgrind":
        argv = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            f"--callgrind-out-file={work}/callgrind.out.%p",
            *argv,
        ]
    elif args.mode == "cprofile":
        argv = [argv[0], "-m", "cProfile", "-o", str(work / "server.prof"), *argv[1:]]
    server = ServerProcess("hubbub", argv, port, args.server_core, work / "server.log", env)
    try:
        server.wait_ready(timeout=300)
        base = f"http://127.0.0.1:{port}"
        users = await register_users(base, args.clients, parallel=16)
        await befriend_pairs(base, users, args.clients // 2, parallel=16)
        ids = [u for u, _ in users]
        targets = [ids[i + 1] if i % 2 == 0 else ids[i - 1] for i in range(args.clients)]
        rec = Recorder()
        peers = await connect_many(
            f"ws://127.0.0.1:{port}/ws",
            rec,
            args.clients,
            tokens=[t for _, t in users],
            targets=targets,
            parallel=32,
        )
        pinger = asyncio.get_running_loop().create_task(keepalive(peers))
        await pace(peers, args.rate, args.warmup)  # warm caches (friendships, statements)
        await drain(rec, peers, expect_delivery=True, timeout=60)

        # idle window
        if args.mode == "callgrind":
            callgrind_ctl(server.pid, "-i on")  # instrumentation on (started off: setup runs at full speed)
            callgrind_ctl(server.pid, "-z")
        c0 = server.cpu_seconds()
        await asyncio.sleep(args.duration)
        idle_cpu = server.cpu_seconds() - c0
        idle_ir = 0
        if args.mode == "callgrind":
            callgrind_ctl(server.pid, "-d")
            idle_ir = callgrind_total(work, server.pid)
            callgrind_ctl(server.pid, "-z")

        # paced window
        s0 = rec.sent
        c0, l0, t0 = server.cpu_seconds(), self_cpu_seconds(), time.monotonic()
        rec.clear_samples()
        rec.recording = True
        spy = None
        if args.mode == "pyspy":
            exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            spy = subprocess.Popen(
                [
                    exe,
                    "record",
                    "--pid",
                    str(server.pid),
                    "--duration",
                    str(int(args.duration)),
                    "--rate",
                    "500",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--gil",
                    "-o",
                    str(work / "profile.raw"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        await pace(peers, args.rate, args.duration)
        if spy is not None:
            spy.wait(30)
            print(f"py-spy profile: {work / 'profile.raw'} (bench/profile_top.py)")
        ok = await drain(rec, peers, expect_delivery=True, timeout=120)
        rec.recording = False
        elapsed = time.monotonic() - t0
        busy_cpu = server.cpu_seconds() - c0
        client_cpu = self_cpu_seconds() - l0
        msgs = rec.sent - s0
        print(f"mode {args.mode}, {args.clients} clients, paced {args.rate:g} msg/s for {args.duration:g} s")
        print(f"messages {msgs}, all acked and delivered: {ok}, errors {rec.errors}")
        print(
            f"server CPU: idle window {idle_cpu:.3f} s, paced window {busy_cpu:.3f} s "
            f"({busy_cpu / elapsed:.0%} of a core)"
        )
        print(
            f"server CPU per message (minus idle): {(busy_cpu - idle_cpu * elapsed / args.duration) / msgs * 1e6:.0f} µs"
        )
        print(f"load generator CPU: {client_cpu / elapsed:.0%} of its core")
        if rec.delivery_ns:
            s = sorted(rec.delivery_ns)
            print(f"delivery p50 / p99: {s[len(s) // 2] / 1e6:.2f} / {s[int(len(s) * 0.99)] / 1e6:.2f} ms")
        if args.mode == "callgrind":
            callgrind_ctl(server.pid, "-d")
            busy_ir = callgrind_total(work, server.pid)
            per = (busy_ir - idle_ir * elapsed / args.duration) / msgs
            print(f"instructions: idle window {idle_ir:,}, paced window {busy_ir:,}")
            print(f"instructions per message (minus idle): {per:,.0f}")
            print(f"callgrind dumps in {work} (callgrind_annotate the last one)")
        pinger.cancel()
        for p in peers:
            p.close()
        await asyncio.sleep(0.5)
    finally:
        server.stop()
        if args.mode == "cprofile":
            prof = work / "server.prof"
            for _ in range(50):
                if prof.exists():
                    break
                time.sleep(0.2)
            if prof.exists():
                st = pstats.Stats(str(prof))
                print(f"cProfile: {st.total_calls:,} calls in the whole run (setup included); {prof}")
                st.sort_stats("tottime").print_stats(args.top)
        if not args.keep and args.mode == "cpu":
            shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["cpu", "callgrind", "cprofile", "pyspy"], default="cpu")
    p.add_argument("--rate", type=float, default=1200)
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=3.0)
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--src", type=Path, help="serve hubbub from this src/ dir (A/B)")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    pin_self(args.client_core)
    raise_nofile(args.clients + 1000)
    import uvloop

    uvloop.run(run(args))


if __name__ == "__main__":
    main()
