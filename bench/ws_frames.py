"""Receive-side cost of the gateway's WebSocket framing (gateway/transport.py) in isolation: per frame and per
connection, for an A/B between two source trees (e.g. the hand-written parser against the ``websockets`` one).

    .venv/bin/python bench/ws_frames.py                      # this tree
    .venv/bin/python bench/ws_frames.py --src /tmp/base/src  # another one
    valgrind --tool=callgrind .venv/bin/python bench/ws_frames.py --feed-only 20000   # and --feed-only 0:
        the difference of the two instruction counts / 20,000 is the framing cost per frame, load-independent

Per frame: one masked text frame of ``--size`` bytes per ``data_received`` call, as a client sends them, into a
``WsProtocol`` whose transport only counts writes. ``parse`` replaces the hand-off to the gateway by a counter
(framing alone); ``deliver`` keeps it (a reader task per message, as when a client waits for each reply).
Both report the best of ``--repeat`` runs. Per connection: ``tracemalloc`` over ``--conns`` new protocols, one
frame each (an idle authenticated connection has received its ``auth``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
import tracemalloc
from pathlib import Path


class CountingTransport(asyncio.Transport):
    """What WsProtocol touches of a transport; writes are counted, nothing is sent."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def masked_text(payload: bytes) -> bytes:
    """A client's frame: FIN + TEXT, masked (RFC 6455 5.3)."""
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x81, 0x80 | n)) if n < 126 else bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


async def per_frame(ws_cls: type, frame: bytes, count: int, deliver: bool) -> float:
    """Seconds per frame."""
    received = 0

    async def on_message(payload: bytes) -> None:
        nonlocal received
        received += 1

    protocol = ws_cls(CountingTransport(), 1 << 16)
    protocol.on_message = on_message
    t0 = time.perf_counter()
    for _ in range(count):
        protocol.data_received(frame)
        if deliver:
            await asyncio.sleep(0)  # the reader task hands the message over
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0)
    return elapsed / count


async def per_connection(ws_cls: type, frame: bytes, conns: int) -> float:
    """Bytes allocated and kept per protocol after one frame."""

    async def on_message(payload: bytes) -> None:
        pass

    transports = [CountingTransport() for _ in range(conns)]  # not the protocol's: made before counting
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    kept = []
    for transport in transports:
        protocol = ws_cls(transport, 1 << 16)
        protocol.on_message = on_message
        protocol.data_received(frame)
        kept.append(protocol)
    await asyncio.sleep(0)  # reader tasks finish and are freed
    await asyncio.sleep(0)
    gc.collect()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    return used / conns


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    p.add_argument("--size", type=int, default=120, help="payload bytes (a typical 1:1 send frame)")
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--conns", type=int, default=5000)
    p.add_argument(
        "--feed-only", type=int, metavar="N", help="only feed N frames (framing alone), for callgrind"
    )
    args = p.parse_args()
    sys.path.insert(0, str(args.src))
    from hubbub.gateway.transport import WsProtocol

    class ParseOnly(WsProtocol):  # type: ignore[misc,valid-type]
        __slots__ = ("n",)

        def _deliver(self, payload: bytes) -> None:
            self.n = payload

    payload = (b'{"type":"send","rid":17,"conv":"p:1:2","body":"' + b"x" * args.size)[: args.size - 2] + b'"}'
    frame = masked_text(payload)
    if args.feed_only is not None:
        protocol = ParseOnly(CountingTransport(), 1 << 16)
        for _ in range(args.feed_only):
            protocol.data_received(frame)
        return

    async def run() -> None:
        print(f"source: {args.src}  frame: {len(frame)} bytes on the wire ({len(payload)} payload)")
        for label, cls, deliver in (("parse", ParseOnly, False), ("deliver", WsProtocol, True)):
            best = min([await per_frame(cls, frame, args.frames, deliver) for _ in range(args.repeat)])
            print(f"{label:8} {best * 1e9:8.0f} ns per frame (best of {args.repeat} x {args.frames:,})")
        print(
            f"memory   {await per_connection(WsProtocol, frame, args.conns):8.0f} bytes per connection "
            f"(tracemalloc, {args.conns:,} protocols, one frame each)"
        )

    asyncio.run(run())


if __name__ == "__main__":
    main()
