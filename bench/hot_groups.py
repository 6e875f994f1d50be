"""Hot groups: plain push versus push-pull, on a real 2-node cluster (issue 5's measurement).

    .venv/bin/python bench/hot_groups.py                 # 10,000 members, 2,000 online, 1,000 messages
    .venv/bin/python bench/hot_groups.py --quick         # 2,000 members, 400 online, 200 messages

For each mode it starts a throwaway Redis and PostgreSQL and two `hubbub serve` nodes, creates the group
straight in the database (10,000 members would take minutes through the API), connects the online members
as real WebSocket clients spread over both nodes, has 20 senders send a burst, and waits until every online
member holds every message. It then checks each member's copy (all seqs, in order, the right texts) and
prints, per message: frames and bytes the servers sent, Redis commands (server-wide INFO commandstats),
database statements, server CPU seconds; plus the end-to-end time and the servers' memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import Cluster, redis_calls, scrape, seed_users
from _members import Member, connect, created_notice, disconnect, print_table, wait_complete
from _procs import raise_nofile
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.sql import SqlStorage


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    threshold = "500" if mode == "push-pull" else str(10**9)
    cluster = Cluster(nodes=2, env={"HUBBUB_HOT_GROUP_THRESHOLD": threshold})
    created: dict[str, Any] = {}

    async def setup(storage: SqlStorage) -> None:
        # The group, straight into the database: 10,000 members through the API would take minutes.
        await seed_users(storage, args.members, args.online)
        notice = created_notice(MessageIds("bench"))
        created["update"] = await storage.create_group(
            1, {"name": "big"}, list(range(2, args.members + 1)), notice
        )

    await cluster.start(setup)
    try:
        update = created["update"]
        conv = update.group.conv
        base_seq = update.stored.message.seq
        total = base_seq + args.messages
        urls = cluster.urls
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        online, tasks = await connect(
            cluster, http, conv, args.online, base_seq, total
        )  # online before the burst: synced up to the group's creation

        before = [await scrape(http, u) for u in urls]
        cpu_before = cluster.cpu_seconds()
        redis_before = await redis_calls(cluster.redis)

        # -- the burst: 20 senders, messages spread evenly -------------------------------------------
        senders = online[: args.senders]
        per_sender = args.messages // len(senders)
        started = time.monotonic()

        async def send_all(sender: Member) -> None:
            for k in range(per_sender):
                await sender.send(f"b{sender.uid}-{k}", f"m {sender.uid} {k}")

        await asyncio.gather(*(send_all(s) for s in senders))
        await wait_complete(online, total, mode, args.timeout)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        cpu = cluster.cpu_seconds() - cpu_before
        redis_used = await redis_calls(cluster.redis) - redis_before

        # -- check: everyone has every message, in order, exactly the texts that were sent ------------
        expected = {f"m {s.uid} {k}" for s in senders for k in range(per_sender)}
        complete = sum(
            1
            for m in online
            if m.have == total and {m.texts[s] for s in range(base_seq + 1, total + 1)} == expected
        )
        n = args.messages
        result = {
            "frames/msg": await cluster.metric_delta(http, before, "hubbub_frames_out_total") / n,
            "bytes/msg": await cluster.metric_delta(http, before, "hubbub_bytes_out_total") / n,
            "redis cmds/msg": redis_used / n,
            "db queries/msg": await cluster.metric_delta(http, before, "hubbub_db_queries_total") / n,
            "server CPU ms/msg": 1000 * cpu / n,
            "end-to-end s": elapsed,
            "server RSS MiB": cluster.rss_bytes() / 2**20,
            "members complete": complete,
            "online members": len(online),
        }
        await disconnect(online, tasks, http)
        return result
    finally:
        await cluster.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--online", type=int, default=2_000)
    parser.add_argument("--messages", type=int, default=1_000)
    parser.add_argument("--senders", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--quick", action="store_true", help="2,000 members, 400 online, 200 messages")
    parser.add_argument("--modes", default="push,push-pull")
    args = parser.parse_args()
    if args.quick:
        args.members, args.online, args.messages = 2_000, 400, 200
    raise_nofile(65536)
    results = {}
    for mode in args.modes.split(","):
        print(
            f"running {mode}: {args.members} members, {args.online} online on 2 nodes, "
            f"{args.messages} messages from {args.senders} senders ...",
            file=sys.stderr,
        )
        results[mode] = await run_mode(mode, args)
    print_table(results, 22)
    if "push" in results and "push-pull" in results:
        p, q = results["push"], results["push-pull"]
        print(
            f"\npush-pull cuts frames/msg by {p['frames/msg'] / max(q['frames/msg'], 1e-9):.1f}x and server "
            f"CPU/msg by {p['server CPU ms/msg'] / max(q['server CPU ms/msg'], 1e-9):.1f}x"
        )
    ok = all(r["members complete"] == r["online members"] for r in results.values())
    print("every online member has every message in order:", "yes" if ok else "NO")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
