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
import resource
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import Cluster, redis_calls, scrape, seed_users, token
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage
from hubbub.engines.storage.sql import SqlStorage

decode = msgspec.json.decode


class Member:
    """A lean client: auth, then keep the group complete from `msg` pushes or `news` + `pull`."""

    def __init__(self, uid: int, token: str, url: str, conv: str, total: int) -> None:
        self.uid, self.token, self.url, self.conv, self.total = uid, token, url, conv, total
        self.have = 0
        self.texts: dict[int, str] = {}
        self.pulling = False
        self.again = False
        self.done = asyncio.Event()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.rid = 0
        self.frames = 0
        self.errors: list[dict] = []
        self.unacked: dict[str, str] = {}

    async def run(self, http: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        self.ws = ws = await http.ws_connect(self.url + "/ws", max_msg_size=0)
        await ws.send_str('{"type":"auth","token":"%s","terminal":"web"}' % self.token)
        async for msg in ws:
            self.frames += 1
            frame = decode(msg.data)
            kind = frame["type"]
            if kind == "auth_ok":
                ready.set()
            elif kind == "msg" and frame["msg"]["conv"] == self.conv:
                self.take([frame["msg"]])
                if frame["msg"]["seq"] > self.have:
                    self.pull()
            elif kind == "news" and frame["conv"] == self.conv and frame["seq"] > self.have:
                self.pull()
            elif kind == "error":
                # A real client retries a little later, with the same cmid for a send (an overloaded server
                # answers unavailable and stores nothing).
                self.errors.append(frame)
                rid = frame.get("rid")
                if isinstance(rid, str) and rid in self.unacked:
                    asyncio.get_running_loop().call_later(0.5, self.resend, rid)
                else:
                    self.pulling = False
                    asyncio.get_running_loop().call_later(0.5, self.pull)
            elif kind == "ack":
                self.unacked.pop(frame.get("rid"), None)
            elif kind == "messages":
                self.take(frame["messages"])
                self.pulling = False
                if frame["has_more"] or self.again:
                    self.again = False
                    self.pull()

    def take(self, messages: list[dict]) -> None:
        for m in messages:
            if m["seq"] not in self.texts:
                self.texts[m["seq"]] = m["body"].get("text", "")
        while self.have + 1 in self.texts:
            self.have += 1
        if self.have >= self.total:
            self.done.set()

    async def send(self, cmid: str, text: str) -> None:
        frame = '{"type":"send","cmid":"%s","rid":"%s","conv":"%s","body":{"text":"%s"}}' % (
            cmid,
            cmid,
            self.conv,
            text,
        )
        self.unacked[cmid] = frame
        assert self.ws is not None
        await self.ws.send_str(frame)

    def resend(self, cmid: str) -> None:
        frame = self.unacked.get(cmid)
        if frame is not None and self.ws is not None:
            asyncio.get_running_loop().create_task(self.ws.send_str(frame))

    def pull(self) -> None:
        if self.pulling:
            self.again = True
            return
        self.pulling = True
        self.rid += 1
        assert self.ws is not None
        asyncio.get_running_loop().create_task(
            self.ws.send_str(
                '{"type":"pull","conv":"%s","after_seq":%d,"limit":200,"rid":%d}'
                % (self.conv, self.have, self.rid)
            )
        )


async def run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    threshold = "500" if mode == "push-pull" else str(10**9)
    cluster = Cluster(nodes=2, env={"HUBBUB_HOT_GROUP_THRESHOLD": threshold})
    created: dict[str, Any] = {}

    async def setup(storage: SqlStorage) -> None:
        # The group, straight into the database: 10,000 members through the API would take minutes.
        await seed_users(storage, args.members, args.online)
        notice = NewMessage(
            id=MessageIds("bench").next(),
            conv="",
            sender=1,
            cmid="~bench",
            type="system",
            body={"event": "created"},
            ts=now_ms(),
        )
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
        online = [
            Member(uid, token(cluster.secret, uid), urls[uid % 2], conv, total)
            for uid in range(1, args.online + 1)
        ]
        for m in online:  # they were online before the burst: synced up to the group's creation
            m.have = base_seq
        tasks = []
        for start in range(0, len(online), 200):
            readies = []
            for m in online[start : start + 200]:
                ready = asyncio.Event()
                readies.append(ready)
                tasks.append(asyncio.create_task(m.run(http, ready)))
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 300)
        await asyncio.sleep(1.0)  # presence and registry settle

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
        try:
            await asyncio.wait_for(asyncio.gather(*(m.done.wait() for m in online)), args.timeout)
        except TimeoutError:
            lagging = [m for m in online if not m.done.is_set()]
            print(f"  {mode}: {len(lagging)} members incomplete after {args.timeout} s", file=sys.stderr)
            for m in lagging[:3]:
                print(f"    uid {m.uid} have {m.have}/{total} errors {m.errors[-2:]}", file=sys.stderr)
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
        for m in online:
            if m.ws is not None:
                await m.ws.close()
        for task in tasks:
            task.cancel()
        await http.close()
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
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    results = {}
    for mode in args.modes.split(","):
        print(
            f"running {mode}: {args.members} members, {args.online} online on 2 nodes, "
            f"{args.messages} messages from {args.senders} senders ...",
            file=sys.stderr,
        )
        results[mode] = await run_mode(mode, args)
    names = list(next(iter(results.values())))
    print(f"\n{'':22}" + "".join(f"{mode:>14}" for mode in results))
    for name in names:
        print(f"{name:22}" + "".join(f"{results[mode][name]:>14.3f}" for mode in results))
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
