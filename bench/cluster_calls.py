"""CPU per operation of the cluster engines on a 1:1 send, in one process, with no sockets to clients.

The cross-node bench (bench/cross_node.py) needs a quiet machine: its figures follow the batch sizes, which
follow the machine's load. This one counts CPU seconds of the engines alone (both nodes' engines run in this
process, so "both nodes together"), which a loaded machine inflates far less, per operation of a send:

  take      the send rate limit (send_rate/send_burst defaults) for 500 users in turn: memory, Redis
  publish   one 1:1 message to a user on the other node, awaited like the batcher does (lookup + queue write),
            until the other node's engines handed it to their sink (read + ack + decode): a batch of 1, of 8

    PYTHONPATH=src .venv/bin/python bench/cluster_calls.py
    PYTHONPATH=/tmp/xbase/src .venv/bin/python bench/cluster_calls.py     # A/B against another copy
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.servers, not hubbub (PYTHONPATH)

import redis.asyncio as aioredis
from tests import servers

from hubbub.engines.cluster.redis import RedisCluster
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.ratelimit.redis import RedisRateLimiter
from hubbub.engines.redis_keys import Keys
from hubbub.engines.redis_link import RedisLink, connect
from hubbub.engines.registry.redis import RedisRegistry
from hubbub.engines.routing.base import Event
from hubbub.engines.routing.redis import RedisRouting
from hubbub.protocol.close_codes import Close

PAYLOAD = b'{"type":"msg","msg":{"id":"x","conv":"p:1:2","seq":1,"body":{"text":"hello from the bench"}}}'


class Sink:
    def __init__(self) -> None:
        self.events = 0

    def deliver(self, events: Sequence[Event]) -> None:
        self.events += len(events)

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        pass

    def broadcast(self, payload: bytes) -> None:
        pass


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def proc_cpu(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def node(
    url: str, node_id: str, keys: Keys, sink: Sink
) -> tuple[RedisRouting, RedisRegistry, RedisCluster]:
    link = RedisLink()
    client = connect(url, link)
    cluster = RedisCluster(client, node_id, url=url, link=link, keys=keys)
    registry = RedisRegistry(client, node_id, cluster, keys=keys)
    routing = RedisRouting(client, node_id, registry, cluster, keys=keys)
    await routing.start(sink)
    await cluster.start()
    await registry.start(sink)
    return routing, registry, cluster


async def main() -> None:
    server = servers.RedisServer().start()
    assert server.proc is not None
    url = server.url
    admin = aioredis.Redis.from_url(url)
    rows: list[tuple[str, float, float, float]] = []

    async def measure(name: str, n: int, work: object) -> None:
        calls0 = sum(int(v["calls"]) for v in (await admin.info("commandstats")).values())
        c0, r0 = cpu(), proc_cpu(server.proc.pid)  # type: ignore[union-attr]
        await work  # type: ignore[misc]
        c1, r1 = cpu(), proc_cpu(server.proc.pid)  # type: ignore[union-attr]
        calls = sum(int(v["calls"]) for v in (await admin.info("commandstats")).values()) - calls0 - 1
        rows.append((name, 1e6 * (c1 - c0) / n, 1e6 * (r1 - r0) / n, calls / n))

    try:
        users = 500
        n = 20_000
        memory = MemoryRateLimiter()
        shared = RedisRateLimiter(url, prefix=f"b{uuid.uuid4().hex[:6]}:")
        await shared.take("warm", 1.0, 2)

        async def takes(limiter: object) -> None:
            for i in range(n):
                await limiter.take(f"send:{i % users}", 50.0, 200)  # type: ignore[attr-defined]

        await measure("take, memory", n, takes(memory))
        await measure("take, Redis", n, takes(shared))
        await shared.close()

        keys = Keys(f"b{uuid.uuid4().hex[:6]}:")
        a_sink, b_sink = Sink(), Sink()
        a, _, a_cluster = await node(url, "n1", keys, a_sink)
        b, b_registry, b_cluster = await node(url, "n2", keys, b_sink)
        for uid in range(1, 9):
            await b_registry.register(uid, "web", f"n2/{uid}")
        await a.publish([Event((1,), PAYLOAD)])  # warm: n2's liveness cached, connections open
        while b_sink.events < 1:
            await asyncio.sleep(0.01)

        async def publishes(count: int, batch: int) -> None:
            target = b_sink.events + count * batch
            for _ in range(count):
                await a.publish([Event((uid,), PAYLOAD) for uid in range(1, batch + 1)])
            while b_sink.events < target:
                await asyncio.sleep(0.001)

        m = 3000
        await measure("publish, batch of 1 (per msg)", m, publishes(m, 1))
        await measure("publish, batch of 8 (per msg)", 8 * m, publishes(m, 8))
        for engine in (a, b):
            await engine.close()
        for c in (a_cluster, b_cluster):
            await c.close()
    finally:
        await admin.aclose()
        server.stop()
    print(f"\n{'':34}{'node CPU µs':>14}{'Redis CPU µs':>14}{'Redis cmds':>12}   (per operation)")
    for name, node_us, redis_us, calls in rows:
        print(f"{name:34}{node_us:>14.1f}{redis_us:>14.1f}{calls:>12.3f}")
    print(f"load average {os.getloadavg()[0]:.1f}, {time.strftime('%H:%M:%S')}")


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
