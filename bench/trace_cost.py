"""CPU cost of per-message tracing (hubbub/proof/trace.py) on the send path, in process: the hooks a node runs
for each message of the 1:1 path (``stored`` after a batch, ``delivered`` for its push to the peer) and the
flush into the single-node ring, for batches of 64, by ``trace_sample``. CPU time (process_time), so a busy
machine inflates it less than wall time. Compare with the server's CPU per message from
``bench/load_1to1.py --quick`` ("server CPU s per 1,000 msgs"). See docs/benchmarks.md, "Tracing cost".

    .venv/bin/python bench/trace_cost.py
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from hubbub.core.models import Message
from hubbub.engines.routing.base import Event
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.proof.trace import MemoryTraceStore, Tracer
from hubbub.protocol.frames import MsgPush, encode

BATCH = 64
BATCHES = 500


class Conn:
    conn_id = "c1"
    terminal = "web"


def batches() -> list[tuple[list[NewMessage], list[Any], list[Event]]]:
    out = []
    for b in range(BATCHES):
        items, results, events = [], [], []
        for i in range(BATCH):
            mid = 10**15 + b * BATCH + i
            body = {"text": "hello"}
            items.append(NewMessage(id=mid, conv="p:1:2", sender=1, cmid=f"c{mid}", type="text", body=body, ts=1,
                                    members=(1, 2)))  # fmt: skip
            message = Message(id=str(mid), conv="p:1:2", seq=b * BATCH + i + 1, sender=1, type="text", body=body,
                              ts=1, cmid=f"c{mid}")  # fmt: skip
            results.append(Stored(message=message, duplicate=False, recipients=(1, 2)))
            events.append(Event((1, 2), encode(MsgPush(msg=message)), "c0"))
        out.append((items, results, events))
    return out


async def measure(sample: float) -> float:
    tracer = Tracer(MemoryTraceStore(86400, 100_000), "n1", sample)
    data = batches()
    by_user = {1: [Conn()], 2: [Conn()]}
    started = time.process_time()
    for items, results, events in data:
        tracer.stored(items, results)
        tracer.delivered(events, by_user)
        await tracer.flush()
    spent = time.process_time() - started
    await tracer.close()
    return spent / (BATCH * BATCHES) * 1e6


async def main() -> None:
    for sample in (1.0, 0.1, 0.01, 0.0):
        runs = sorted([await measure(sample) for _ in range(5)])
        print(f"trace_sample {sample:<5} {runs[len(runs) // 2]:6.2f} µs CPU per message (median of 5)")


if __name__ == "__main__":
    asyncio.run(main())
