"""A reaction storm on a big group: plain push versus push-pull, on a real 2-node cluster (issue 14).

    .venv/bin/python bench/reaction_storm.py              # 10,000 members, 500 online, 1,000 reactions
    .venv/bin/python bench/reaction_storm.py --quick      # 2,000 members, 400 online, 200 reactions

Like bench/hot_groups.py (whose lean client it uses): a throwaway Redis, PostgreSQL and two `hubbub serve`
nodes per mode; the group and one message are made straight in the database; the online members connect as
real WebSocket clients over both nodes. Then members react to the message, each with up to four emoji, until
`--reactions` reactions are made (`react` frames; `reaction` events in the group's seq), and the run waits until every online member holds
every event. It checks the message's final count, and prints per reaction: frames and bytes the servers sent,
Redis commands, database statements, server CPU; the end-to-end time; and the load generator's own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import Cluster, redis_calls, scrape, seed_users, token
from _members import Member, connect, created_notice, disconnect, print_table, wait_complete
from _procs import raise_nofile
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.engines.storage.sql import SqlStorage

#: Each reactor reacts with these, one after another (a user's second emoji is a second reaction).
EMOJI = ("👍", "🎉", "❤️", "😂")


async def react(member: Member, seq: int, emoji: tuple[str, ...]) -> None:
    assert member.ws is not None
    for i, e in enumerate(emoji):
        rid = f"r{member.uid}-{i}"
        frame = msgspec.json.encode(
            {"type": "react", "conv": member.conv, "seq": seq, "emoji": e, "rid": rid}
        )
        member.unacked[rid] = frame.decode()  # an overloaded server answers unavailable: the client retries
        await member.ws.send_str(frame.decode())


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    threshold = "500" if mode == "push-pull" else str(10**9)
    # The lean clients do not ping: a long storm must not close them for silence (4508).
    env = {
        "HUBBUB_HOT_GROUP_THRESHOLD": threshold,
        "HUBBUB_SEND_BURST": "100000",
        "HUBBUB_HEARTBEAT_S": "600",
    }
    cluster = Cluster(nodes=2, env=env)
    made: dict[str, Any] = {}

    async def setup(storage: SqlStorage) -> None:
        await seed_users(storage, args.members, args.online)
        ids = MessageIds("bench")
        notice = created_notice(ids)
        update = await storage.create_group(1, {"name": "big"}, list(range(2, args.members + 1)), notice)
        said = NewMessage(
            id=ids.next(),
            conv=update.group.conv,
            sender=1,
            cmid="react-to-me",
            type="text",
            body={"text": "react to me"},
            ts=now_ms(),
        )
        stored = (await storage.store_messages([said]))[0]
        assert isinstance(stored, Stored)
        made["conv"], made["seq"] = update.group.conv, stored.message.seq

    await cluster.start(setup)
    try:
        conv, seq = made["conv"], made["seq"]
        total = seq + args.reactions
        urls = cluster.urls
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        online, tasks = await connect(
            cluster, http, conv, args.online, seq, total
        )  # online before the storm, holding the message

        before = [await scrape(http, u) for u in urls]
        cpu_before = cluster.cpu_seconds()
        redis_before = await redis_calls(cluster.redis)
        load_before = resource.getrusage(resource.RUSAGE_SELF)
        started = time.monotonic()
        plan = [(online[i // len(EMOJI)], EMOJI[i % len(EMOJI)]) for i in range(args.reactions)]
        per_member: dict[int, list[str]] = {}
        for m, e in plan:
            per_member.setdefault(m.uid, []).append(e)
        reactors = [m for m in online if m.uid in per_member]
        for start in range(0, len(reactors), 50):  # a storm, not a single instant: 50 members at a time
            await asyncio.gather(
                *(react(m, seq, tuple(per_member[m.uid])) for m in reactors[start : start + 50])
            )
        await wait_complete(online, total, mode, args.timeout)
        elapsed = time.monotonic() - started
        load_after = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(0.5)
        cpu = cluster.cpu_seconds() - cpu_before
        redis_used = await redis_calls(cluster.redis) - redis_before

        headers = {"Authorization": f"Bearer {token(cluster.secret, 1)}"}
        page_url = f"{urls[0]}/api/v1/conversations/{conv}/messages?after_seq={seq - 1}&limit=1"
        async with http.get(page_url, headers=headers) as resp:
            message = (await resp.json())["messages"][0]
        count = sum(r["count"] for r in message["body"].get("reactions", []))
        complete = sum(1 for m in online if m.have == total)
        n = args.reactions
        load_cpu = (load_after.ru_utime + load_after.ru_stime) - (load_before.ru_utime + load_before.ru_stime)
        result = {
            "frames/reaction": await cluster.metric_delta(http, before, "hubbub_frames_out_total") / n,
            "bytes/reaction": await cluster.metric_delta(http, before, "hubbub_bytes_out_total") / n,
            "redis cmds/reaction": redis_used / n,
            "db queries/reaction": await cluster.metric_delta(http, before, "hubbub_db_queries_total") / n,
            "server CPU ms/reaction": 1000 * cpu / n,
            "end-to-end s": elapsed,
            "load gen CPU s": load_cpu,
            "final count": count,
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
    parser.add_argument("--online", type=int, default=500)
    parser.add_argument("--reactions", type=int, default=1_000)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--quick", action="store_true", help="2,000 members, 400 online, 200 reactions")
    parser.add_argument("--modes", default="push,push-pull")
    args = parser.parse_args()
    if args.quick:
        args.members, args.online, args.reactions = 2_000, 400, 200
    args.reactions = min(
        args.reactions, args.online * len(EMOJI)
    )  # each online member reacts at most 4 times
    raise_nofile(65536)
    results = {}
    for mode in args.modes.split(","):
        print(
            f"running {mode}: {args.members} members, {args.online} online on 2 nodes, "
            f"{args.reactions} reactions ...",
            file=sys.stderr,
        )
        results[mode] = await run_mode(mode, args)
    print_table(results, 24)
    if "push" in results and "push-pull" in results:
        p, q = results["push"], results["push-pull"]
        print(
            f"\npush-pull cuts frames/reaction by {p['frames/reaction'] / max(q['frames/reaction'], 1e-9):.1f}x and "
            f"server CPU/reaction by {p['server CPU ms/reaction'] / max(q['server CPU ms/reaction'], 1e-9):.1f}x"
        )
    ok = all(
        r["members complete"] == r["online members"] and r["final count"] == args.reactions
        for r in results.values()
    )
    print("every online member holds every reaction event, and the count is right:", "yes" if ok else "NO")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    asyncio.run(main())
