"""Group fan-out: one group of 1,000 online members, 10 senders, the server on one core (issue 3).

    .venv/bin/python bench/group_fanout.py            # 1,000 members, 10 senders x 100 messages
    .venv/bin/python bench/group_fanout.py --quick    # 300 members, 10 senders x 30 messages

The embedded server runs as a real process pinned to core 0; this load generator pins itself to core 1. The
group is created straight in the database (the API would need 1,000 friendships first), then every member
connects as a real WebSocket client. Senders keep a few unacknowledged sends in flight each. Reported: member
deliveries per second (messages x members, first send to last delivery), fan-out latency p50/p99 (a send until
the last member has it), server CPU seconds per 1,000 deliveries, and whether every member got every message.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
import msgspec
from picows import WSListener, WSMsgType, WSTransport, ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _procs import (
    FAST_ENV,
    ServerProcess,
    free_port,
    hubbub_argv,
    pin_self,
    raise_nofile,
    self_cpu_seconds,
)
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import NewMessage
from hubbub.engines.storage.sql import SqlStorage

SERVER_CORE, CLIENT_CORE = 0, 1
decode = msgspec.json.decode


async def make_group(db_url: str, members: int, online: int) -> str:
    storage = SqlStorage(db_url)
    await storage.start()
    now = now_ms()
    async with storage.writer.begin() as conn:
        users = [
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
        await conn.execute(t.users.insert(), users)
        await conn.execute(
            t.sessions.insert(),
            [
                {"sid": f"s{i}", "user_id": i, "revoked": False, "created_at": now}
                for i in range(1, online + 1)
            ],
        )
    notice = NewMessage(
        id=MessageIds("bench").next(),
        conv="",
        sender=1,
        cmid="~bench",
        type="system",
        body={"event": "created"},
        ts=now,
    )
    update = await storage.create_group(1, {"name": "fanout"}, list(range(2, members + 1)), notice)
    await storage.close()
    return update.group.conv


class Member(WSListener):
    """One member's connection (picows, as the 1:1 bench's clients: with aiohttp the load generator, not the
    server, was the ceiling at ~90,000 deliveries/s). Every frame is one callback."""

    def __init__(
        self, uid: int, seen: dict[str, float], counts: dict[str, int], cache: dict[bytes, str | None]
    ) -> None:
        super().__init__()
        self.uid = uid
        self.seen = seen
        self.counts = counts
        self.cache = cache  # shared: the same push reaches every member, decode it once
        self.got = 0
        self.transport: WSTransport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.acked: asyncio.Queue[str] = asyncio.Queue()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"member {self.uid} disconnected before auth_ok"))

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self.on_text(frame.get_payload_as_bytes())
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.disconnect()

    def on_text(self, data: bytes) -> None:
        cmid = self.cache.get(data, "")
        if cmid == "":
            frame = decode(data)
            kind = frame["type"]
            if kind == "auth_ok":
                self.ready.set_result(None)
                return
            if kind == "ack":
                self.acked.put_nowait(frame["cmid"])
                return
            cmid = frame["msg"]["cmid"] if kind == "msg" and frame["msg"]["type"] == "text" else None
            if kind == "msg":
                self.cache[data] = cmid
        if cmid:
            self.got += 1
            self.seen[cmid] = time.monotonic()
            self.counts[cmid] = self.counts.get(cmid, 0) + 1

    def send(self, text: str) -> None:
        assert self.transport is not None
        self.transport.send(WSMsgType.TEXT, text.encode())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.send_close()
            self.transport.disconnect()


async def join(member: Member, url: str, token: str) -> None:
    await ws_connect(lambda: member, url, read_buffer_init_size=4096, websocket_handshake_timeout=30)
    member.send('{"type":"auth","terminal":"web","token":"' + token + '"}')
    await asyncio.wait_for(member.ready, 60)


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--senders", type=int, default=10)
    parser.add_argument("--messages", type=int, default=100, help="per sender")
    parser.add_argument("--window", type=int, default=4, help="unacknowledged sends per sender")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.members, args.messages = 300, 30
    pin_self(CLIENT_CORE)
    raise_nofile(args.members * 2 + 100)
    work = Path(tempfile.mkdtemp(prefix="hubbub-fanout-"))
    secret = secrets.token_urlsafe(32)
    (work / "data").mkdir()
    conv = await make_group(f"sqlite+aiosqlite:///{work / 'data' / 'hubbub.db'}", args.members, args.members)
    port = free_port()
    env = {
        **FAST_ENV,
        "HUBBUB_JWT_SECRET": secret,
        "HUBBUB_MAX_WS_PER_IP": "100000",
        "HUBBUB_HOT_GROUP_THRESHOLD": str(10**9),
    }  # plain push: this is the fan-out benchmark
    server = ServerProcess(
        "hubbub", hubbub_argv(port, work / "data"), port, SERVER_CORE, work / "server.log", env
    )
    try:
        server.wait_ready()
        seen: dict[str, float] = {}
        counts: dict[str, int] = {}
        cache: dict[bytes, str | None] = {}
        members = [Member(uid, seen, counts, cache) for uid in range(1, args.members + 1)]
        ws_url = f"ws://127.0.0.1:{port}/ws"
        for start in range(0, len(members), 100):
            batch = members[start : start + 100]
            tokens = [
                jwt.encode(
                    {"sub": str(m.uid), "sid": f"s{m.uid}", "exp": int(time.time()) + 3600},
                    secret,
                    algorithm="HS256",
                )
                for m in batch
            ]
            await asyncio.wait_for(
                asyncio.gather(*(join(m, ws_url, t) for m, t in zip(batch, tokens, strict=True))), 300
            )
        await asyncio.sleep(1)

        sent: dict[str, float] = {}

        async def sender(m: Member) -> None:
            in_flight = 0
            for k in range(args.messages):
                if in_flight >= args.window:
                    await m.acked.get()
                    in_flight -= 1
                cmid = f"f{m.uid}-{k}"
                sent[cmid] = time.monotonic()
                m.send('{"type":"send","cmid":"%s","conv":"%s","body":{"text":"%s"}}' % (cmid, conv, cmid))
                in_flight += 1

        total = args.senders * args.messages
        expected = total * (args.members - 1)  # the sender's own socket gets the ack, not the push
        cpu0, started, load0 = server.cpu_seconds(), time.monotonic(), self_cpu_seconds()
        await asyncio.gather(*(sender(m) for m in members[: args.senders]))
        deadline = time.monotonic() + 120
        while sum(m.got for m in members) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        finished = max(seen.values()) if seen else time.monotonic()
        cpu = server.cpu_seconds() - cpu0
        load_cpu = self_cpu_seconds() - load0
        delivered = sum(m.got for m in members)
        latencies = sorted(1000 * (seen[c] - sent[c]) for c in sent if c in seen)
        elapsed = finished - started
        complete = delivered == expected and all(counts.get(c) == args.members - 1 for c in sent)
        rows = [
            ("members online", f"{args.members}"),
            ("messages", f"{total} from {args.senders} senders, window {args.window}"),
            ("member deliveries", f"{delivered} of {expected}"),
            ("deliveries/s", f"{delivered / elapsed:,.0f}"),
            (
                "fan-out latency p50 / p99 (ms)",
                f"{statistics.median(latencies):.1f} / {latencies[int(len(latencies) * 0.99) - 1]:.1f}",
            ),
            ("server CPU s per 1,000 deliveries", f"{1000 * cpu / max(delivered, 1):.4f}"),
            ("server / load generator CPU", f"{cpu / elapsed:.0%} / {load_cpu / elapsed:.0%}"),
            ("every member got every message once", "yes" if complete else "NO"),
        ]
        print()
        for name, value in rows:
            print(f"{name:38} {value}")
        for m in members:
            m.close()
        sys.exit(0 if complete else 1)
    finally:
        server.stop()


if __name__ == "__main__":
    asyncio.run(main())
