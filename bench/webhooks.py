"""Outgoing webhook deliveries on one node: how fast the dispatcher drains a burst of messages to a receiver
on loopback, and each event's latency from storing (the message's ``ts``) to its arrival at the receiver.
Everything (node, load generator, receiver) runs in this one process; its CPU time is printed beside the
figures. See docs/benchmarks.md, "Webhook deliveries".

    .venv/bin/python bench/webhooks.py [--messages 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from tests.webhook_receiver import Receiver

from hubbub.client import HubbubClient
from hubbub.config import Config
from hubbub.node import Node


def webhook_node_config(data_dir: str, **overrides: Any) -> Config:
    """An embedded node in ``data_dir`` that may post to the local receiver, with cheap password hashing."""
    return Config(
        port=0,
        data_dir=data_dir,
        argon2_time_cost=1,
        argon2_memory_kib=256,
        webhook_allow_networks="127.0.0.0/8",
        log_level="warning",
        **overrides,
    )


async def main(count: int) -> None:
    receiver = await Receiver().start()
    with tempfile.TemporaryDirectory() as tmp:
        config = webhook_node_config(tmp, send_rate=100_000, send_burst=100_000, webhook_poll_s=0.05)
        node = Node(config)
        await node.start()
        client = HubbubClient(f"http://127.0.0.1:{node.port}")
        try:
            await client.register("bench_owner", "correct-horse-battery")
            group = await client.api("POST", "/api/v1/groups", {"name": "bench", "members": []})
            hook = await client.api(
                "POST",
                "/api/v1/webhooks/outgoing",
                {"conv": group["conv"], "url": receiver.url, "events": ["message"]},
            )
            receiver.secret = hook["secret"]
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for start in range(0, count, 100):
                await asyncio.gather(
                    *(
                        client.api(
                            "POST",
                            "/api/v1/messages",
                            {"cmid": f"b{i}", "conv": group["conv"], "body": {"text": f"m{i}"}},
                        )
                        for i in range(start, min(count, start + 100))
                    )
                )
            sent = time.perf_counter() - wall0
            await receiver.wait_for(count, timeout=600)
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
        finally:
            await client.close()
            await node.stop()
            await receiver.stop()
    lat = sorted(e["_arrived_ms"] - e["message"]["ts"] for e in receiver.received)
    print(f"messages: {count}, sent in {sent:.2f} s, all delivered after {wall:.2f} s")
    print(f"deliveries/s: {count / wall:.0f}")
    print(
        f"latency store->receiver ms: p50 {statistics.median(lat):.0f}, p99 {lat[int(len(lat) * 0.99) - 1]:.0f}"
    )
    print(
        f"process CPU (node + load generator + receiver): {cpu:.2f} s ({cpu / count * 1000:.2f} ms per message)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=2000)
    asyncio.run(main(parser.parse_args().messages))
