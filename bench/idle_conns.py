"""Idle authenticated connections on one node: memory per connection and how many it holds (issue 19).

    .venv/bin/python bench/idle_conns.py --conns 100000          # 100k, clients over 4 processes
    .venv/bin/python bench/idle_conns.py --conns 5000 --procs 1

The users and their sessions are written straight into a fresh embedded database (registering 100,000
accounts over HTTP would take longer than the measurement), each client gets a signed access token for its own
session, so every connection's ``auth`` is checked for real (signature, session row, user row, registry). The
server runs as a real process pinned to core 0; the clients are picows connections spread over ``--procs``
processes pinned to core 1 (one process cannot hold 100,000 sockets' callbacks quickly), which connect to
several loopback addresses (127.0.0.1-4: one address gives only ~28,000 ephemeral ports). Every client pings
every 20 s, as a real one does, so none is closed as silent while the others connect.

Reported: server RSS before and after (``VmRSS``), KiB per connection, connections per second (connect +
upgrade + auth + ``auth_ok``), connections still open after ``--hold`` seconds, and the CPU of the server and
of the load generator processes. ``ulimit -n`` is raised for both (root may raise the hard limit).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import resource
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import jwt

from _procs import FAST_ENV, ServerProcess, free_port, hubbub_argv, pin_self
from _ws import Recorder, connect_many, keepalive


def raise_files(n: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(n, soft), max(n, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


async def make_users(db_url: str, count: int) -> None:
    from hubbub.core.clock import now_ms
    from hubbub.engines.storage import schema as t
    from hubbub.engines.storage.sql import SqlStorage

    storage = SqlStorage(db_url)
    await storage.start()
    now = now_ms()
    async with storage.writer.begin() as conn:
        for start in range(1, count + 1, 10_000):
            ids = range(start, min(count, start + 9_999) + 1)
            await conn.execute(
                t.users.insert(),
                [
                    {
                        "username": f"idle{i}",
                        "username_lower": f"idle{i}",
                        "nickname": f"idle{i}",
                        "signature": "",
                        "password_hash": "x",
                        "banned": False,
                        "created_at": now,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                t.sessions.insert(),
                [{"sid": f"s{i}", "user_id": i, "revoked": False, "created_at": now} for i in ids],
            )
    await storage.close()


def client_proc(port: int, uids: list[int], secret: str, core: int, out: mp.Queue, hold: mp.Event) -> None:
    """One load generator process: connect and authenticate its share, report, keep them open until told."""
    pin_self(core)
    raise_files(len(uids) + 1000)
    import uvloop

    async def run() -> None:
        exp = int(time.time()) + 3600
        tokens = [
            jwt.encode({"sub": str(u), "sid": f"s{u}", "exp": exp}, secret, algorithm="HS256") for u in uids
        ]
        rec = Recorder()
        peers: list = []
        # Pinging starts with the first connection: the list grows in place as the rest connect.
        pinger = asyncio.get_running_loop().create_task(keepalive(peers, every=20.0))
        t0 = time.monotonic()
        cpu0 = os.times()
        chunk = 500  # added to the pinged list as each chunk is connected
        for k in range(0, len(uids), chunk):
            host = f"127.0.0.{1 + (k // 7_000) % 4}"  # 7,000 per loopback address and process
            peers.extend(
                await connect_many(
                    f"ws://{host}:{port}/ws",
                    rec,
                    len(tokens[k : k + chunk]),
                    tokens=tokens[k : k + chunk],
                    terminal="desktop",
                    parallel=100,
                )
            )
        elapsed = time.monotonic() - t0
        cpu1 = os.times()
        out.put(("connected", len(peers), elapsed, (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)))
        while not hold.is_set():
            await asyncio.sleep(0.5)
        cpu2 = os.times()
        out.put(
            ("held", sum(not p.gone for p in peers), (cpu2.user + cpu2.system) - (cpu1.user + cpu1.system))
        )
        pinger.cancel()
        for p in peers:
            p.close()
        await asyncio.sleep(1)

    uvloop.run(run())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conns", type=int, default=100_000)
    p.add_argument("--procs", type=int, default=4, help="load generator processes")
    p.add_argument(
        "--hold", type=float, default=30.0, help="seconds to hold them all, then count the open ones"
    )
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--client-core", type=int, default=1)
    p.add_argument("--src", type=Path, help="serve hubbub from this src/ dir (A/B)")
    args = p.parse_args()
    limit = raise_files(args.conns + 5000)
    if limit < args.conns + 500:
        # Without CAP_SYS_RESOURCE the hard limit cannot be raised, and the server needs a descriptor per socket.
        print(
            f"WARNING: ulimit -n is {limit} (hard limit); the server cannot hold {args.conns:,} sockets here"
        )
    print(f"ulimit -n {limit}; load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    work = Path(tempfile.mkdtemp(prefix="hubbub-idle-"))
    (work / "data").mkdir()
    secret = secrets.token_urlsafe(32)
    t = time.monotonic()
    asyncio.run(make_users(f"sqlite+aiosqlite:///{work / 'data' / 'hubbub.db'}", args.conns))
    print(f"{args.conns:,} users and sessions written in {time.monotonic() - t:.1f} s")
    port = free_port()
    env = {
        **FAST_ENV,
        "HUBBUB_JWT_SECRET": secret,
        "HUBBUB_HOST": "0.0.0.0",
        "HUBBUB_MAX_WS_PER_IP": str(args.conns * 2),
    }
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    server = ServerProcess(
        "hubbub", hubbub_argv(port, work / "data"), port, args.server_core, work / "log", env
    )
    try:
        server.wait_ready()
        time.sleep(1.0)
        rss0, cpu0 = server.rss_kib(), server.cpu_seconds()
        out: mp.Queue = mp.Queue()
        hold = mp.Event()
        ids = list(range(1, args.conns + 1))
        share = -(-args.conns // args.procs)
        procs = [
            mp.Process(
                target=client_proc,
                args=(port, ids[i * share : (i + 1) * share], secret, args.client_core, out, hold),
            )
            for i in range(args.procs)
        ]
        t0 = time.monotonic()
        for pr in procs:
            pr.start()
        connected = load_cpu = 0.0
        for _ in procs:
            _kind, n, _elapsed, cpu = out.get(timeout=3600)
            connected += n
            load_cpu += cpu
        connect_s = time.monotonic() - t0
        cpu1 = server.cpu_seconds()
        time.sleep(3.0)
        rss1 = server.rss_kib()
        print(
            f"connected {int(connected):,} in {connect_s:.1f} s: {connected / connect_s:,.0f} connections/s"
        )
        print(f"  server CPU while connecting {cpu1 - cpu0:.1f} s; load generators {load_cpu:.1f} s")
        print(f"server RSS before / after: {rss0 / 1024:.1f} / {rss1 / 1024:.1f} MiB")
        print(f"memory per idle authenticated connection: {(rss1 - rss0) / max(1, connected):.2f} KiB")
        time.sleep(args.hold)
        cpu2 = server.cpu_seconds()
        hold.set()
        held = idle_load = 0.0
        for _ in procs:
            _kind, n, cpu = out.get(timeout=600)
            held += n
            idle_load += cpu
        print(
            f"after holding {args.hold:g} s: {int(held):,} still open; RSS {server.rss_kib() / 1024:.1f} MiB; "
            f"server CPU {100 * (cpu2 - cpu1) / (args.hold + 3):.1f} % of a core while idle (pings every 20 s); "
            f"load generators {100 * idle_load / (args.hold + 3):.1f} %"
        )
        print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
        for pr in procs:
            pr.join(30)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
