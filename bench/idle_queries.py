"""What an idle node asks its database, and how soon a webhook fires on the node that stored the message.

One node (SQLite, default settings: Web Push on, the default poll intervals) with ``--hooks`` groups, each
with an outgoing webhook to a receiver on loopback. After one delivery per webhook it sits idle for
``--idle`` seconds and counts the SQL statements it ran (``SqlStorage.queries``, the ``hubbub_db_queries``
metric); then it sends ``--probes`` messages a second apart and prints each one's latency from storing (the
message's ``ts``) to the receiver. See docs/benchmarks.md, "Web Push" and "Webhook deliveries".

    .venv/bin/python bench/idle_queries.py [--hooks 3] [--idle 10] [--probes 5] [--by-statement]

Uses only the public ``Node``/``HubbubClient`` API, so an older tree can be measured the same way (put its
``src`` first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event
from tests.webhook_receiver import Receiver

from hubbub.client import HubbubClient
from hubbub.node import Node
from webhooks import webhook_node_config


async def main(hooks: int, idle: float, probes: int, by_statement: bool) -> None:
    receiver = await Receiver().start()
    with tempfile.TemporaryDirectory() as tmp:
        config = webhook_node_config(tmp)
        node = Node(config)
        await node.start()
        storage = node.root.get_storage()
        client = HubbubClient(f"http://127.0.0.1:{node.port}")
        try:
            await client.register("idle_owner", "correct-horse-battery")
            convs = []
            for n in range(hooks):
                group = await client.api("POST", "/api/v1/groups", {"name": f"g{n}", "members": []})
                await client.api(
                    "POST",
                    "/api/v1/webhooks/outgoing",
                    {"conv": group["conv"], "url": receiver.url, "events": ["message"]},
                )
                convs.append(group["conv"])
            for n, conv in enumerate(convs):
                await client.api(
                    "POST", "/api/v1/messages", {"cmid": f"w{n}", "conv": conv, "body": {"text": "w"}}
                )
            await receiver.wait_for(hooks, timeout=60)
            await asyncio.sleep(2.0)  # settle: leases given back, first sweeps done
            seen: Counter[str] = Counter()

            def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
                seen[" ".join(statement.split())[:72]] += 1

            engines = {id(e): e.sync_engine for e in (storage.engine, storage.writer)}.values()
            before, started = storage.queries, time.monotonic()
            for engine in engines:
                event.listen(engine, "before_cursor_execute", note)
            await asyncio.sleep(idle)
            for engine in engines:
                event.remove(engine, "before_cursor_execute", note)
            spent = time.monotonic() - started
            count = storage.queries - before
            for n in range(probes):
                await client.api(
                    "POST", "/api/v1/messages", {"cmid": f"p{n}", "conv": convs[0], "body": {"text": "p"}}
                )
                await receiver.wait_for(hooks + n + 1, timeout=60)
                await asyncio.sleep(1.0)
        finally:
            await client.close()
            await node.stop()
            await receiver.stop()
    lat = [e["_arrived_ms"] - e["message"]["ts"] for e in receiver.received[hooks:]]
    print(f"idle node, {hooks} webhooks, Web Push on: {count} SQL statements in {spent:.1f} s")
    if by_statement:
        for statement, n in seen.most_common():
            print(f"  {n:5}  {statement}")
    print(f"webhook latency store->receiver ms: {lat} (median {statistics.median(lat):.0f})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--hooks", type=int, default=3)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--by-statement", action="store_true", help="count the idle statements by their text")
    args = parser.parse_args()
    asyncio.run(main(args.hooks, args.idle, args.probes, args.by_statement))
