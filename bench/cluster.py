"""Cross-node traffic on a real cluster (issue 4): 1:1 and group messages over Redis and PostgreSQL.

    .venv/bin/python bench/cluster.py             # 1 node, then 2 nodes; 600 users; 10 s per phase
    .venv/bin/python bench/cluster.py --quick     # 300 users, 5 s per phase

For each cluster size it starts a throwaway Redis, PostgreSQL and the nodes, seeds users, friendships (each
pair's two users on different nodes when there are two) and one group, then runs two closed-loop phases:

  1:1    every user keeps a few unacknowledged messages in flight to its friend
  group  10 senders keep a few in flight each to a group of 200 online members (plain push)

Reported per phase: messages/s (acked and delivered), delivery latency p50/p99, Redis commands per delivered
message (server-wide INFO commandstats), and the nodes' CPU seconds per 1,000 messages.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import Cluster, redis_calls, seed_users, token
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import NewMessage
from hubbub.engines.storage.sql import SqlStorage

decode = msgspec.json.decode
GROUP_SIZE = 200
GROUP_SENDERS = 10


class Client:
    def __init__(self, uid: int, stats: dict[str, Any]) -> None:
        self.uid = uid
        self.stats = stats
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.acks: asyncio.Queue[None] = asyncio.Queue()
        self.k = 0

    async def run(self, http: aiohttp.ClientSession, url: str, tok: str, ready: asyncio.Event) -> None:
        self.ws = ws = await http.ws_connect(url + "/ws", max_msg_size=0)
        await ws.send_str('{"type":"auth","terminal":"web","token":"' + tok + '"}')
        async for msg in ws:
            frame = decode(msg.data)
            kind = frame["type"]
            if kind == "auth_ok":
                ready.set()
            elif kind == "ack":
                self.stats["acked"] += 1
                self.acks.put_nowait(None)
            elif kind == "msg" and frame["msg"]["type"] == "text":
                sent = self.stats["sent_at"].get(frame["msg"]["cmid"])
                if sent is not None:
                    self.stats["delivered"] += 1
                    self.stats["latency"].append(time.monotonic() - sent)
            elif kind == "error":
                self.stats["errors"] += 1
                self.acks.put_nowait(None)

    async def blast(self, frame_of: Any, window: int, until: float) -> None:
        assert self.ws is not None
        for _ in range(window):
            self.acks.put_nowait(None)
        while time.monotonic() < until:
            await self.acks.get()
            self.k += 1
            cmid = f"c{self.uid}-{self.k}"
            self.stats["sent_at"][cmid] = time.monotonic()
            await self.ws.send_str(frame_of(cmid))


async def run_size(nodes: int, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    cluster = Cluster(nodes=nodes, env={"HUBBUB_HOT_GROUP_THRESHOLD": str(10**9)})
    made: dict[str, str] = {}

    async def setup(storage: SqlStorage) -> None:
        await seed_users(storage, args.users, args.users)
        now = now_ms()
        pairs = [(uid, uid + 1) for uid in range(1, args.users, 2)]
        async with storage.writer.begin() as conn:
            await conn.execute(
                t.friendships.insert(),
                [{"user_id": a, "friend_id": b, "since": now} for x, y in pairs for a, b in ((x, y), (y, x))],
            )
        notice = NewMessage(
            id=MessageIds("bench").next(),
            conv="",
            sender=1,
            cmid="~g",
            type="system",
            body={"event": "created"},
            ts=now,
        )
        update = await storage.create_group(1, {"name": "g"}, list(range(2, GROUP_SIZE + 1)), notice)
        made["group"] = update.group.conv

    await cluster.start(setup)
    results: dict[str, dict[str, float]] = {}
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    try:
        stats: dict[str, Any] = {}
        clients = [Client(uid, stats) for uid in range(1, args.users + 1)]
        tasks = []
        for start in range(0, len(clients), 200):
            readies = []
            for c in clients[start : start + 200]:
                ready = asyncio.Event()
                readies.append(ready)
                # Users i and i+1 are friends; with two nodes they sit on different ones.
                url = cluster.urls[c.uid % len(cluster.urls)]
                tasks.append(asyncio.create_task(c.run(http, url, token(cluster.secret, c.uid), ready)))
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 300)
        await asyncio.sleep(1)

        async def phase(name: str, senders: list[Client], frame_of: Any) -> None:
            stats.update(acked=0, delivered=0, errors=0, sent_at={}, latency=[])
            cpu0, redis0 = cluster.cpu_seconds(), await redis_calls(cluster.redis)
            backing0, gen0 = cluster.backing_cpu_seconds(), time.process_time()
            started = time.monotonic()
            until = started + args.seconds
            await asyncio.gather(*(c.blast(frame_of(c), args.window, until) for c in senders))
            await asyncio.sleep(1.0)  # let the last deliveries land
            elapsed = time.monotonic() - started - 1.0
            cpu = cluster.cpu_seconds() - cpu0
            backing = cluster.backing_cpu_seconds() - backing0
            gen = time.process_time() - gen0
            redis_used = await redis_calls(cluster.redis) - redis0
            lat = sorted(stats["latency"]) or [0.0]
            results[name] = {
                "msgs/s": stats["acked"] / elapsed,
                "deliveries/s": stats["delivered"] / elapsed,
                "delivery p50 ms": 1000 * statistics.median(lat),
                "delivery p99 ms": 1000 * lat[int(len(lat) * 0.99) - 1],
                "redis cmds/delivery": redis_used / max(stats["delivered"], 1),
                "CPU s/1k msgs": 1000 * cpu / max(stats["acked"], 1),
                "redis+pg CPU s/1k": 1000 * backing / max(stats["acked"], 1),
                "loadgen CPU %": 100 * gen / (elapsed + 1.0),
                "errors": stats["errors"],
            }

        def private(c: Client) -> Any:
            peer = c.uid + 1 if c.uid % 2 else c.uid - 1
            return lambda cmid: '{"type":"send","cmid":"%s","to":%d,"body":{"text":"x"}}' % (cmid, peer)

        def group(_c: Client) -> Any:
            return lambda cmid: (
                '{"type":"send","cmid":"%s","conv":"%s","body":{"text":"x"}}' % (cmid, made["group"])
            )

        await phase("1:1", clients, private)
        await phase("group", clients[:GROUP_SENDERS], group)
        for c in clients:
            if c.ws is not None:
                await c.ws.close()
        for task in tasks:
            task.cancel()
        return results
    finally:
        await http.close()
        await cluster.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.users, args.seconds = 300, 5
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    table: dict[str, dict[str, float]] = {}
    for nodes in (1, 2):
        print(f"running {nodes} node(s), {args.users} users ...", file=sys.stderr)
        for name, row in (await run_size(nodes, args)).items():
            table[f"{name}, {nodes} node{'s' if nodes > 1 else ''}"] = row
    columns = list(next(iter(table.values())))
    print(f"\n{'':18}" + "".join(f"{c:>20}" for c in columns))
    for name, row in table.items():
        print(f"{name:18}" + "".join(f"{row[c]:>20.3f}" for c in columns))


if __name__ == "__main__":
    asyncio.run(main())
