#!/usr/bin/env python3
"""Soak and chaos run: a 3-node cluster, thousands of simulated users, random faults for minutes, then the
exactly-once proof. Not a CI test (docs/reliability.md records runs; CI runs the short
tests/chaos/test_chaos_ci.py, built on the same harness and checker).

    .venv/bin/python scripts/soak.py                      # 2,000 users, 10 minutes
    .venv/bin/python scripts/soak.py --minutes 3 --users 1000 --rate 80

What it does (tests/chaos/harness.py): a throwaway Redis (no persistence), PostgreSQL and 3 node processes;
users in private pairs, groups of 8 and one hot group; every user connected over WebSocket (the SDK, given all
three node URLs) sending at ``--rate`` messages a second in total, each until acknowledged (same cmid on
retry). Every ``--chaos-every`` seconds one of: SIGKILL a node and restart it; restart Redis empty; cut 5% of
the client sockets. Then every node up, every client reconnected and synced, and hubbub/proof/checker.py over
what the server stored, what the senders were told and what every member holds. Exits 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import servers  # noqa: E402
from tests.chaos import harness  # noqa: E402


async def chaos(cluster: harness.ChaosCluster, clients: list[harness.ChaosClient], stats: harness.Stats,
                every: float, until: float) -> None:  # fmt: skip
    loop = asyncio.get_running_loop()
    while loop.time() + every < until:
        await asyncio.sleep(every * (0.5 + random.random()))
        action = random.choice(["kill", "redis", "drop"])
        if action == "kill":
            await harness.kill_and_restart(random.choice(cluster.nodes), stats, random.uniform(2, 6))
        elif action == "redis":
            await harness.restart_redis(cluster.redis, stats)
        else:
            await harness.cut_sockets(clients, 0.05, stats)


async def report(stats: harness.Stats, until: float) -> None:
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(30)
        left = max(0, until - loop.time())
        harness.log(
            f"sent {stats.sent}, acked {len(stats.ledger.acked)}, not acked {stats.failed}; {left:.0f} s to go"
        )


async def run(args: argparse.Namespace) -> int:
    random.seed(args.seed)
    started = time.monotonic()
    cluster = harness.ChaosCluster(Path(tempfile.mkdtemp(prefix="hubbub-soak-")), 3)
    clients: list[harness.ChaosClient] = []
    stats = harness.Stats()
    try:
        harness.log(f"cluster up: {cluster.urls}, Redis {cluster.redis.url}, logs in {cluster.tmp}")
        clients, convs, hot_conv = await harness.setup(
            cluster.urls, args.users, args.group_size, args.hot_size
        )
        await harness.connect_all(clients)
        harness.log(f"{len(clients)} clients connected; sending ~{args.rate}/s for {args.minutes} min")
        loop = asyncio.get_running_loop()
        until = loop.time() + args.minutes * 60
        pending: set[asyncio.Task[None]] = set()
        reporter = loop.create_task(report(stats, until))
        await asyncio.gather(
            harness.traffic(clients, convs, stats, args.rate, until, pending, hot_conv),
            chaos(cluster, clients, stats, args.chaos_every, until)
            if args.chaos_every > 0
            else asyncio.sleep(0),
        )
        reporter.cancel()
        harness.log(f"traffic stopped; waiting for {len(pending)} sends in flight")
        if pending:
            await asyncio.wait(pending, timeout=120)
        await cluster.revive()
        await harness.final_sync(clients, stats)
        harness.log("every client reconnected and synced; checking")
        verdict = await harness.verify(clients, convs, stats)
        summary = {
            "users": args.users,
            "conversations": len(convs),
            "minutes": args.minutes,
            **harness.figures(stats, verdict, clients, started),
            "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}",
        }
        print()
        for key, value in summary.items():
            print(f"{key:>22}: {value}")
        return 0 if verdict.ok else 1
    finally:
        await harness.close_all(clients)
        cluster.stop()
        servers.cleanup_template()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second, all users together")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--hot-size", type=int, default=50, help="members of the one hot group (0: none)")
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
