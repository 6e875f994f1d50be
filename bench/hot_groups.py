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
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import jwt
import msgspec
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from tests import servers  # noqa: E402

from hubbub.core.clock import now_ms  # noqa: E402
from hubbub.core.ids import MessageIds  # noqa: E402
from hubbub.engines.storage.base import NewMessage  # noqa: E402
from hubbub.engines.storage.sql import SqlStorage  # noqa: E402

decode = msgspec.json.decode


def proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds, RSS bytes) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
    return cpu, rss


async def scrape(http: aiohttp.ClientSession, url: str) -> dict[str, float]:
    async with http.get(url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def redis_calls(client: aioredis.Redis) -> int:
    stats = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k not in ("cmdstat_info",))


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
    redis_server = servers.RedisServer().start()
    pg = servers.PostgresServer().start()
    secret = secrets.token_urlsafe(32)
    procs: list[subprocess.Popen[bytes]] = []
    tmp = tempfile.mkdtemp(prefix="hubbub-bench-")
    try:
        database = pg.create_database("bench")
        env = {
            **os.environ,
            "HUBBUB_JWT_SECRET": secret,
            "HUBBUB_REDIS": redis_server.url,
            "HUBBUB_DATABASE": database,
            "HUBBUB_HOT_GROUP_THRESHOLD": "500" if mode == "push-pull" else str(10**9),
            "HUBBUB_SEND_RATE": "100000",
            "HUBBUB_SEND_BURST": "100000",
            "HUBBUB_LOG_LEVEL": "warning",
            "HUBBUB_IP_LIMIT_EXEMPT": "127.0.0.0/8",  # thousands of clients from one address
            "HUBBUB_MAX_WS_PER_IP": "100000",
        }
        subprocess.run([sys.executable, "-m", "hubbub", "migrate"], env=env, check=True, cwd=tmp)

        # -- the group, straight into the database --------------------------------------------------
        storage = SqlStorage("postgresql+asyncpg://" + database.split("://", 1)[1], hot_threshold=10**9)
        members = args.members
        async with storage.writer.begin() as conn:
            from hubbub.engines.storage import schema as t

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
                for i in range(members)
            ]
            for start in range(0, len(rows), 2000):
                await conn.execute(t.users.insert(), rows[start : start + 2000])
            sids = [
                {"sid": f"s{i}", "user_id": i + 1, "revoked": False, "created_at": now}
                for i in range(args.online)
            ]
            await conn.execute(t.sessions.insert(), sids)
        notice = NewMessage(
            id=MessageIds("bench").next(),
            conv="",
            sender=1,
            cmid="~bench",
            type="system",
            body={"event": "created"},
            ts=now_ms(),
        )
        update = await storage.create_group(1, {"name": "big"}, list(range(2, members + 1)), notice)
        await storage.close()
        conv = update.group.conv
        base_seq = update.stored.message.seq
        total = base_seq + args.messages

        # -- two nodes -----------------------------------------------------------------------------
        ports = [servers.free_port(), servers.free_port()]
        for n, port in enumerate(ports):
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "hubbub",
                        "serve",
                        "--port",
                        str(port),
                        "--node-id",
                        f"n{n + 1}",
                        "--data-dir",
                        os.path.join(tmp, f"n{n}"),
                    ],
                    env=env,
                    cwd=tmp,
                    stdout=subprocess.DEVNULL,
                    stderr=open(os.path.join(tmp, f"n{n}.log"), "wb"),
                )
            )
        for port in ports:
            servers._wait_port(port, 30)
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        for url in urls:
            for _ in range(100):
                try:
                    async with http.get(url + "/readyz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

        def token(uid: int) -> str:
            return jwt.encode(
                {"sub": str(uid), "sid": f"s{uid - 1}", "exp": int(time.time()) + 3600},
                secret,
                algorithm="HS256",
            )

        online = [Member(uid, token(uid), urls[uid % 2], conv, total) for uid in range(1, args.online + 1)]
        tasks = []
        for start in range(0, len(online), 200):
            readies = []
            for m in online[start : start + 200]:
                ready = asyncio.Event()
                readies.append(ready)
                tasks.append(asyncio.create_task(m.run(http, ready)))
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
        await asyncio.sleep(1.0)  # presence and registry settle

        rclient = aioredis.Redis.from_url(redis_server.url)
        before = [await scrape(http, u) for u in urls]
        cpu_before = [proc_stats(p.pid)[0] for p in procs]
        redis_before = await redis_calls(rclient)

        # -- the burst: 20 senders, messages spread evenly -------------------------------------------
        senders = online[: args.senders]
        per_sender = args.messages // len(senders)
        started = time.monotonic()

        async def send_all(sender: Member) -> None:
            assert sender.ws is not None
            for k in range(per_sender):
                await sender.send(f"b{sender.uid}-{k}", f"m {sender.uid} {k}")

        await asyncio.gather(*(send_all(s) for s in senders))
        try:
            await asyncio.wait_for(asyncio.gather(*(m.done.wait() for m in online)), args.timeout)
        except TimeoutError:
            lagging = [m for m in online if not m.done.is_set()]
            print(f"  {mode}: {len(lagging)} members incomplete after {args.timeout} s", file=sys.stderr)
            for n in range(2):
                log = Path(tmp, f"n{n}.log").read_text(errors="replace").strip().splitlines()
                print("\n".join(log[-12:]), file=sys.stderr)
            for m in lagging[:3]:
                print(
                    f"    uid {m.uid} have {m.have}/{total} pulling {m.pulling} again {m.again} "
                    f"errors {m.errors[-2:]}",
                    file=sys.stderr,
                )
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.5)
        after = [await scrape(http, u) for u in urls]
        stats_after = [proc_stats(p.pid) for p in procs]
        redis_after = await redis_calls(rclient)

        # -- check: everyone has every message, in order, exactly the texts that were sent ------------
        expected = {f"m {s.uid} {k}" for s in senders for k in range(per_sender)}
        complete = sum(
            1
            for m in online
            if m.have == total and {m.texts[s] for s in range(base_seq + 1, total + 1)} == expected
        )

        def delta(name: str) -> float:
            return sum(a.get(name, 0) - b.get(name, 0) for a, b in zip(after, before, strict=True))

        n = args.messages
        result = {
            "frames/msg": delta("hubbub_frames_out_total") / n,
            "bytes/msg": delta("hubbub_bytes_out_total") / n,
            "redis cmds/msg": (redis_after - redis_before) / n,
            "db queries/msg": delta("hubbub_db_queries_total") / n,
            "server CPU ms/msg": 1000
            * sum(s[0] - c for s, c in zip(stats_after, cpu_before, strict=True))
            / n,
            "end-to-end s": elapsed,
            "server RSS MiB": sum(s[1] for s in stats_after) / 2**20,
            "members complete": complete,
            "online members": len(online),
        }
        for m in online:
            if m.ws is not None:
                await m.ws.close()
        for task in tasks:
            task.cancel()
        await http.close()
        await rclient.aclose()
        return result
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        redis_server.stop()
        pg.destroy()
        servers.cleanup_template()


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
