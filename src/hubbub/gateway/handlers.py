"""What each authenticated client frame does: a thin call into a service, and the reply frame.

``send`` is handled on the connection's read loop up to the point of queueing (so one connection's sends
keep their order) and acknowledged from a callback when stored; every other request runs as its own task,
so a slow one never holds up reading, heartbeats or later frames on the same connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Ack, Message
from hubbub.gateway.connection import Connection
from hubbub.metrics import NodeMetrics
from hubbub.protocol import frames
from hubbub.protocol.frames import encode
from hubbub.services.container import Services
from hubbub.services.limits import enforce_reads

log = logging.getLogger(__name__)

#: Requests a connection may have running at once; more is a client not waiting for replies.
MAX_INFLIGHT = 16
#: Requests that take from the user's read bucket (shared with REST GETs: services/limits.py).
_READS = frozenset({frames.Sync, frames.Pull, frames.History, frames.Receipts})


def error_frame(exc: HubbubError, rid: frames.Rid, metrics: NodeMetrics | None = None) -> bytes:
    if metrics is not None:
        metrics.errors[exc.code.value] += 1
    return encode(
        frames.ErrorFrame(
            code=exc.code.value,
            message=exc.message,
            rid=rid,
            retry_after=exc.extra.get("retry_after"),
            until=exc.extra.get("until"),
        )
    )


class Handlers:
    def __init__(self, services: Services, metrics: NodeMetrics) -> None:
        self.s = services
        self.metrics = metrics
        self._requests: dict[
            type[frames.ClientFrame], Callable[[Connection, Any], Awaitable[bytes | None]]
        ] = {
            frames.Sync: self._sync,
            frames.Pull: self._pull,
            frames.History: self._history,
            frames.Read: self._read,
            frames.Recall: self._recall,
            frames.Typing: self._typing,
            frames.Receipts: self._receipts,
            frames.Edit: self._edit,
            frames.React: self._react,
            frames.Pin: self._pin,
            frames.Forward: self._forward,
            frames.Hide: self._hide,
            frames.CallInvite: self._call_invite,
            frames.CallRing: self._call_ring,
            frames.CallAccept: self._call_accept,
            frames.CallReject: self._call_reject,
            frames.CallCancel: self._call_cancel,
            frames.CallHangup: self._call_hangup,
            frames.CallResume: self._call_resume,
            frames.CallSdp: self._call_sdp,
            frames.CallIce: self._call_ice,
        }

    async def handle(self, conn: Connection, frame: frames.ClientFrame) -> None:
        if isinstance(frame, frames.Ping):
            conn.send(encode(frames.Pong(ts=now_ms(), rid=frame.rid)))
        elif isinstance(frame, frames.Send):
            await self._send(conn, frame)
        else:
            if conn.inflight >= MAX_INFLIGHT:
                err = HubbubError(Code.RATE_LIMITED, "too many requests in flight, wait for replies")
                conn.send(error_frame(err, getattr(frame, "rid", None), self.metrics))
                return
            conn.inflight += 1
            task = asyncio.get_running_loop().create_task(self._run(conn, frame))
            task.add_done_callback(lambda _t: _done(conn))

    async def _run(self, conn: Connection, frame: frames.ClientFrame) -> None:
        rid = getattr(frame, "rid", None)
        try:
            if type(frame) in _READS:
                await enforce_reads(self.s.auth.limiter, self.s.config, conn.user_id)
            reply = await self._requests[type(frame)](conn, frame)
        except HubbubError as exc:
            reply = error_frame(exc, rid, self.metrics)
        except Exception:
            log.exception("request %s failed", type(frame).__name__)
            reply = error_frame(HubbubError(Code.INTERNAL, "internal error"), rid, self.metrics)
        if reply is not None:
            conn.send(reply)

    # -- send -------------------------------------------------------------------------------------
    async def _send(self, conn: Connection, frame: frames.Send) -> None:
        """Queue the send on the read loop (so one connection's sends keep their order); the ack, or the
        error, is written when it is stored."""
        try:
            stored = await self.s.messages.enqueue(
                conn.user_id,
                to=frame.to,
                conv=frame.conv,
                cmid=frame.cmid,
                msg_type=frame.msg_type,
                body=frame.body,
                origin=conn.conn_id,
            )
        except HubbubError as exc:
            conn.send(error_frame(exc, frame.rid, self.metrics))
            return
        rid = frame.rid
        received = time.monotonic()

        def acknowledge(done: asyncio.Future[Message]) -> None:
            exc = done.exception()
            if exc is None:
                self.metrics.ack_latency.observe(time.monotonic() - received)
                conn.send(encode(frames.AckFrame.of(done.result(), rid)))
            elif isinstance(exc, HubbubError):
                conn.send(error_frame(exc, rid, self.metrics))
            else:
                conn.send(error_frame(HubbubError(Code.INTERNAL, "internal error"), rid, self.metrics))

        stored.add_done_callback(acknowledge)

    # -- requests ---------------------------------------------------------------------------------
    async def _sync(self, conn: Connection, frame: frames.Sync) -> bytes:
        convs = await self.s.messages.conversations(conn.user_id)
        return encode(frames.SyncResult(conversations=convs, rid=frame.rid))

    async def _pull(self, conn: Connection, frame: frames.Pull) -> bytes:
        found, more = await self.s.messages.pull_for_wire(
            conn.user_id, frame.conv, frame.after_seq, frame.limit
        )
        return encode(frames.Messages(conv=frame.conv, messages=found, has_more=more, rid=frame.rid))

    async def _history(self, conn: Connection, frame: frames.History) -> bytes:
        found, more = await self.s.messages.history(conn.user_id, frame.conv, frame.before_seq, frame.limit)
        return encode(frames.Messages(conv=frame.conv, messages=found, has_more=more, rid=frame.rid))

    async def _read(self, conn: Connection, frame: frames.Read) -> bytes:
        await self.s.messages.mark_read(conn.user_id, frame.conv, frame.seq)
        return encode(frames.Ok(rid=frame.rid))

    async def _recall(self, conn: Connection, frame: frames.Recall) -> bytes:
        await self.s.messages.recall(conn.user_id, frame.conv, frame.seq)
        return encode(frames.Ok(rid=frame.rid))

    async def _receipts(self, conn: Connection, frame: frames.Receipts) -> bytes:
        group_id = parse_group(frame.conv)
        if group_id is None:
            raise HubbubError(Code.INVALID_FIELD, "conv: receipts are for group conversations")
        read, total, readers = await self.s.groups.receipts(conn.user_id, group_id, frame.seq)
        return encode(
            frames.ReceiptsResult(
                conv=frame.conv, seq=frame.seq, read=read, total=total, readers=readers, rid=frame.rid
            )
        )

    async def _typing(self, conn: Connection, frame: frames.Typing) -> None:
        await self.s.actions.typing(conn.user_id, frame.conv)

    # -- message actions (services/actions.py): the events arrive as msg / news -------------------------
    async def _edit(self, conn: Connection, frame: frames.Edit) -> bytes:
        await self.s.actions.edit(
            conn.user_id,
            frame.conv,
            frame.seq,
            aid=frame.aid,
            text=frame.text,
            mentions=frame.mentions,
            mention_all=frame.mention_all,
        )
        return encode(frames.Ok(rid=frame.rid))

    async def _react(self, conn: Connection, frame: frames.React) -> bytes:
        await self.s.actions.react(conn.user_id, frame.conv, frame.seq, frame.emoji, frame.on)
        return encode(frames.Ok(rid=frame.rid))

    async def _pin(self, conn: Connection, frame: frames.Pin) -> bytes:
        await self.s.actions.pin(conn.user_id, frame.conv, frame.seq, frame.on)
        return encode(frames.Ok(rid=frame.rid))

    async def _forward(self, conn: Connection, frame: frames.Forward) -> bytes:
        stored = await self.s.actions.forward(
            conn.user_id,
            aid=frame.aid,
            items=[(item.conv, item.seq) for item in frame.items],
            targets=frame.targets,
            show_sender=frame.show_sender,
        )
        return encode(frames.Forwarded(acks=[Ack.of(m) for m in stored], rid=frame.rid))

    async def _hide(self, conn: Connection, frame: frames.Hide) -> bytes:
        await self.s.actions.hide(conn.user_id, frame.conv, frame.seqs)
        return encode(frames.Ok(rid=frame.rid))

    # -- calls (services/calls): each frame is checked against the call's two parties there ------------
    async def _call_invite(self, conn: Connection, frame: frames.CallInvite) -> bytes:
        call = await self.s.calls.invite(conn.user_id, conn.conn_id, frame.to, frame.media, conn.terminal)
        return encode(frames.CallInvited(call=call.info(), rid=frame.rid))

    async def _call_ring(self, conn: Connection, frame: frames.CallRing) -> bytes:
        await self.s.calls.ring(conn.user_id, conn.conn_id, frame.call)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_accept(self, conn: Connection, frame: frames.CallAccept) -> bytes:
        await self.s.calls.accept(conn.user_id, conn.conn_id, frame.call, conn.terminal)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_resume(self, conn: Connection, frame: frames.CallResume) -> bytes:
        await self.s.calls.resume(conn.user_id, conn.conn_id, frame.call, conn.terminal)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_reject(self, conn: Connection, frame: frames.CallReject) -> bytes:
        await self.s.calls.reject(conn.user_id, conn.conn_id, frame.call)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_cancel(self, conn: Connection, frame: frames.CallCancel) -> bytes:
        await self.s.calls.cancel(conn.user_id, conn.conn_id, frame.call)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_hangup(self, conn: Connection, frame: frames.CallHangup) -> bytes:
        await self.s.calls.hangup(conn.user_id, conn.conn_id, frame.call)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_sdp(self, conn: Connection, frame: frames.CallSdp) -> bytes:
        await self.s.calls.sdp(conn.user_id, conn.conn_id, frame.call, frame.kind, frame.sdp)
        return encode(frames.Ok(rid=frame.rid))

    async def _call_ice(self, conn: Connection, frame: frames.CallIce) -> bytes | None:
        await self.s.calls.ice(conn.user_id, conn.conn_id, frame.call, frame.candidate)
        return encode(frames.Ok(rid=frame.rid)) if frame.rid is not None else None


def _done(conn: Connection) -> None:
    conn.inflight -= 1
