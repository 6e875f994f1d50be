"""A lean WebSocket client for the load generator (picows), and the per-connection bench logic.

Not the SDK: the SDK does reconnects, sync and per-request futures, which would make the client, not the
server, the bottleneck. Here a connection is a picows transport plus a few counters; every received frame is
one callback, every send is one pre-formatted bytes object.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msgspec

try:
    from picows import WSListener, WSMsgType, WSTransport, ws_connect
except ImportError as exc:  # pragma: no cover
    raise SystemExit("the load generator needs picows: pip install -r bench/requirements.txt") from exc

_decode = msgspec.json.decode
_now = time.monotonic_ns

#: The send frame: about 100 bytes of JSON, like the figures in the issue. The text starts with the send time
#: (monotonic ns, this process's clock) so the receiving peer can compute delivery latency without a lookup.
_SEND = '{"type":"send","rid":%d,"cmid":"%d","to":%d,"body":{"text":"%019d hello from the bench"}}'


class Recorder:
    """Counters for the whole run, and latency samples while ``recording``."""

    def __init__(self) -> None:
        self.sent = 0
        self.acked = 0
        self.delivered = 0
        self.errors = 0
        self.error_codes: dict[str, int] = {}
        self.closed = 0
        self.recording = False
        self.ack_ns: list[int] = []
        self.delivery_ns: list[int] = []

    def snapshot(self) -> tuple[int, int, int]:
        return self.sent, self.acked, self.delivered

    def clear_samples(self) -> None:
        self.ack_ns = []
        self.delivery_ns = []


class Peer(WSListener):
    """One bench client connection (a picows listener). ``window > 0`` means closed loop: each ack (or echo)
    sends the next message, keeping ``window`` unacknowledged messages in flight."""

    def __init__(self, rec: Recorder, to: int = 0, echo: bool = False) -> None:
        super().__init__()
        self.rec = rec
        self.to = to
        self.echo = echo
        self.transport: WSTransport | None = None
        self.rid = 0
        self.pending: dict[int, int] = {}
        self.window = 0
        self.auth_waiter: asyncio.Future[dict[str, Any]] | None = None
        self.gone = False

    # -- picows callbacks -------------------------------------------------------------------------
    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.gone = True
        self.rec.closed += 1
        if self.auth_waiter is not None and not self.auth_waiter.done():
            self.auth_waiter.set_exception(ConnectionError("disconnected before auth_ok"))

    def on_ws_frame(self, transport: WSTransport, frame: Any) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.TEXT:
            self.on_text(frame.get_payload_as_bytes())
        elif kind == WSMsgType.CLOSE:
            transport.disconnect()

    # -- protocol ---------------------------------------------------------------------------------
    def on_text(self, data: bytes) -> None:
        now = _now()
        d = _decode(data)
        kind = d.get("type")
        rec = self.rec
        if kind == "ack" or (self.echo and kind == "send"):
            sent = self.pending.pop(d.get("rid"), None)
            if sent is not None:
                rec.acked += 1
                if rec.recording:
                    rec.ack_ns.append(now - sent)
                if self.echo:  # the echo is both the ack and the delivery
                    rec.delivered += 1
                    if rec.recording:
                        rec.delivery_ns.append(now - sent)
                if self.window:
                    self.send_one()
        elif kind == "msg":
            text = d["msg"]["body"].get("text", "")
            rec.delivered += 1
            if rec.recording:
                rec.delivery_ns.append(now - int(text[:19]))
        elif kind == "auth_ok":
            if self.auth_waiter is not None and not self.auth_waiter.done():
                self.auth_waiter.set_result(d)
        elif kind == "error":
            rec.errors += 1
            code = d.get("code", "?")
            rec.error_codes[code] = rec.error_codes.get(code, 0) + 1
            self.pending.pop(d.get("rid"), None)
            if self.auth_waiter is not None and not self.auth_waiter.done():
                self.auth_waiter.set_exception(RuntimeError(f"auth failed: {d}"))
        # presence, pong, read, typing...: ignored

    def send_one(self) -> None:
        if self.gone or self.transport is None:
            return
        self.rid += 1
        rid = self.rid
        now = _now()
        self.pending[rid] = now
        self.transport.send(WSMsgType.TEXT, (_SEND % (rid, rid, self.to, now)).encode())
        self.rec.sent += 1

    async def auth(self, token: str, terminal: str) -> None:
        assert self.transport is not None
        self.auth_waiter = asyncio.get_running_loop().create_future()
        frame = msgspec.json.encode({"type": "auth", "token": token, "terminal": terminal})
        self.transport.send(WSMsgType.TEXT, frame)
        await asyncio.wait_for(self.auth_waiter, 30)

    def ping(self) -> None:
        if self.transport is not None and not self.gone:
            self.transport.send(WSMsgType.TEXT, b'{"type":"ping"}')

    def close(self) -> None:
        if self.transport is not None and not self.gone:
            self.transport.send_close()
            self.transport.disconnect()


async def connect(url: str, rec: Recorder, *, to: int = 0, echo: bool = False) -> Peer:
    _transport, listener = await ws_connect(
        lambda: Peer(rec, to, echo), url, read_buffer_init_size=4096, websocket_handshake_timeout=30
    )
    return listener  # type: ignore[return-value]


async def connect_many(
    url: str,
    rec: Recorder,
    count: int,
    *,
    tokens: list[str] | None = None,
    targets: list[int] | None = None,
    terminal: str = "web",
    echo: bool = False,
    parallel: int = 200,
) -> list[Peer]:
    """Open ``count`` connections (and authenticate each with its token), ``parallel`` at a time."""
    gate = asyncio.Semaphore(parallel)

    async def one(i: int) -> Peer:
        async with gate:
            peer = await connect(url, rec, to=targets[i] if targets else 0, echo=echo)
            if tokens is not None:
                await peer.auth(tokens[i], terminal)
            return peer

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def keepalive(peers: list[Peer], every: float = 20.0) -> None:
    """Ping every connection (the server closes one silent for 2.5 heartbeats, 62.5 s by default), so
    connections survive long setup phases and --wait-quiet waits. Cancel it when done."""
    while True:
        await asyncio.sleep(every)
        for p in peers:
            p.ping()
