"""Web Push: pushes prepared and sent per second for one message to a 5,000-member group with 4,000 members
offline (issue 17's figure), against the local RFC 8030 push service of tests/pushservice.py.

    .venv/bin/python bench/webpush.py                  # 5,000 members, 4,000 offline with a device each
    .venv/bin/python bench/webpush.py --quick          # 500 members, 400 offline

The server side runs in this process, as a node's Web Push service does: the real SQLite storage (the
embedded default; ``--database postgresql://...`` for PostgreSQL), the in-process registry with the 1,000
online members registered (in the foreground: they must not be pushed), the VAPID key, the Web Push sender
(pywebpush's RFC 8291 encryption, one pooled aiohttp session). The push service runs as a separate process
(the load generator) and checks every push as a browser would: the VAPID JWT, and the aes128gcm payload
decrypted with the subscription's private key. Printed: the planning time (rules + presence + the queue
upsert), the sending time and rate, the encryption alone per push, both processes' CPU, and this process's
peak memory growth.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives import serialization
from sqlalchemy import insert

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.engines.attention.memory import MemoryAttention
from hubbub.engines.registry.memory import MemoryRegistry
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.engines.storage.base_push import PushDevice
from hubbub.engines.storage.sql import SqlStorage
from hubbub.services.webpush.keys import VapidKeys, load_or_create
from hubbub.services.webpush.senders import WebPushSender
from hubbub.services.webpush.service import WebPushService

CHILD = r"""
import asyncio, json, os, resource, sys
from aiohttp import web
from cryptography.hazmat.primitives import serialization
sys.path.insert(0, sys.argv[2])
from tests.pushservice import PushService, Subscription, b64url, unb64url

async def main():
    service = PushService()
    await service.start()
    spec = json.load(open(sys.argv[1]))
    for s in spec["subs"]:
        key = serialization.load_pem_private_key(s["pem"].encode(), None)
        service.subscriptions[s["id"]] = Subscription(s["id"], key, unb64url(s["auth"]), spec["server_key"])
    async def stats(_r):
        u = resource.getrusage(resource.RUSAGE_SELF)
        return web.json_response({"received": len(service.received), "refused": len(service.refused),
                                  "cpu_s": u.ru_utime + u.ru_stime})
    extra = web.Application(); extra.router.add_get("/stats", stats)
    runner = web.AppRunner(extra); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0); await site.start()
    print(json.dumps({"port": service.port, "stats": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


def cpu_s() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


async def run(members: int, offline: int, database: str) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-webpush-bench-"))
    url = database or f"sqlite+aiosqlite:///{tmp / 'hubbub.db'}"
    config = Config(data_dir=str(tmp), push_allow_http=True, push_window_s=5.0)
    storage = SqlStorage(Config(database=url).database_url if database else url)
    await storage.start()
    keys = VapidKeys(load_or_create("", tmp), "mailto:bench@hubbub.test")

    # Subscriptions, made as browsers make them; their private keys go to the push service process.
    from tests.pushservice import PushService

    maker = PushService()
    maker.port = 1  # replaced below: endpoints are rewritten once the child's port is known
    subs = [maker.subscribe(keys.public_key) for _ in range(offline)]
    spec = {
        "server_key": keys.public_key,
        "subs": [
            {
                "id": sub_id,
                "pem": s.private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
                "auth": s.keys["auth"],
            }
            for sub_id, s in maker.subscriptions.items()
        ],
    }
    spec_path = tmp / "subs.json"
    spec_path.write_text(json.dumps(spec))
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(spec_path), str(Path(__file__).resolve().parents[1])],
        stdout=subprocess.PIPE,
    )
    assert child.stdout is not None
    ports = json.loads(child.stdout.readline())
    try:
        now = now_ms()
        async with storage.writer.begin() as conn:
            await conn.execute(
                insert(t.users),
                [
                    {
                        "id": i,
                        "username": f"u{i}",
                        "username_lower": f"u{i}",
                        "nickname": f"User {i}",
                        "password_hash": "x",
                        "created_at": now,
                    }
                    for i in range(1, members + 1)
                ],
            )
            await conn.execute(
                insert(t.sessions),
                [{"sid": f"s{i}", "user_id": i, "created_at": now} for i in range(1, members + 1)],
            )
            await conn.execute(
                insert(t.groups).values(
                    id=1, name="Big group", owner_id=1, member_count=members, created_at=now
                )
            )
            await conn.execute(
                insert(t.conv_members), [{"user_id": i, "conv": "g:1"} for i in range(1, members + 1)]
            )
            base = f"http://127.0.0.1:{ports['port']}/push/"
            await conn.execute(
                insert(t.push_devices),
                [
                    {
                        "id": f"d{i}",
                        "user_id": i + 2,
                        "sid": f"s{i + 2}",
                        "kind": "webpush",
                        "endpoint": base + sub["endpoint"].rsplit("/", 1)[1],
                        "p256dh": sub["keys"]["p256dh"],
                        "auth": sub["keys"]["auth"],
                        "created_at": now,
                    }
                    for i, sub in enumerate(subs)
                ],
            )
        registry = MemoryRegistry("bench")
        for uid in range(offline + 2, members + 1):  # the others are online, in the foreground
            await registry.register(uid, "web", f"c{uid}")
        sender = WebPushSender(keys)
        service = WebPushService(
            config, storage, registry, MemoryAttention(), keys, {"webpush": sender}, "bench"
        )
        message = NewMessage(
            id="1",
            conv="g:1",
            sender=1,
            cmid="m1",
            type="text",
            body={"text": "Hello, everyone"},
            ts=now,
            mentions=(),
            mention_all=False,
        )
        from hubbub.core.models import Message

        stored = Stored(
            message=Message(
                id="1",
                conv="g:1",
                seq=1,
                sender=1,
                type="text",
                body={"text": "Hello, everyone"},
                ts=now,
                cmid="m1",
            ),
            duplicate=False,
            recipients=tuple(range(1, members + 1)),
        )
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # The encryption alone (RFC 8291: an ECDH and two HKDFs per push), for scale.
        device = PushDevice(
            id="x",
            user_id=2,
            sid="s2",
            kind="webpush",
            endpoint=base + "x",
            p256dh=subs[0]["keys"]["p256dh"],
            auth=subs[0]["keys"]["auth"],
            created_at=now,
        )
        t0 = time.perf_counter()
        for _ in range(200):
            sender.prepare(device, b'{"type":"msg"}' * 8, ttl=60, topic="t", urgency="normal")
        encrypt_us = (time.perf_counter() - t0) / 200 * 1e6

        cpu0, t0 = cpu_s(), time.perf_counter()
        queued = await service.plan([(message, stored)])
        plan_s = time.perf_counter() - t0
        plan_cpu = cpu_s() - cpu0
        cpu1, t1 = cpu_s(), time.perf_counter()
        sent = 0
        while True:
            claimed = await service.drain()
            if not claimed:
                break
            sent += claimed
        send_s = time.perf_counter() - t1
        send_cpu = cpu_s() - cpu1
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['stats']}/stats") as r:
            stats = json.loads(r.read())
        await sender.close()
        print(
            f"members {members}, offline with a device {offline}, online (foreground) {members - offline - 1}"
        )
        print(
            f"planned: {queued} pushes queued in {plan_s * 1000:.0f} ms ({queued / plan_s:,.0f}/s; CPU {plan_cpu:.2f} s)"
        )
        print(
            f"sent:    {service.sent} accepted (+{service.failed} failed) in {send_s:.2f} s = "
            f"{service.sent / send_s:,.0f} pushes/s; server CPU {send_cpu:.2f} s ({send_cpu / max(sent, 1) * 1e6:.0f} µs/push)"
        )
        print(f"end to end: {(plan_s + send_s):.2f} s = {service.sent / (plan_s + send_s):,.0f} pushes/s")
        print(f"encryption alone: {encrypt_us:.0f} µs/push")
        print(
            f"push service (load generator, verifying every push): received {stats['received']}, "
            f"refused {stats['refused']}, CPU {stats['cpu_s']:.2f} s"
        )
        print(
            f"server peak RSS growth during plan+send: {(rss1 - rss0) / 1024:.1f} MiB (peak {rss1 / 1024:.0f} MiB)"
        )
        assert stats["received"] == offline and service.sent == offline
    finally:
        child.terminate()
        child.wait()
        await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database", default="", help="postgresql://... (default: SQLite in a temp dir)")
    args = parser.parse_args()
    members, offline = (500, 400) if args.quick else (5000, 4000)
    asyncio.run(run(members, offline, args.database))


if __name__ == "__main__":
    main()
