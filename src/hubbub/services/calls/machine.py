"""The rules of a 1:1 call as pure logic: a call and an input in, the next call and its effects out.

No I/O and no clock of its own: every step takes ``now`` (ms), so tests drive it with a fake clock and every
node applies the same rules to the one copy of the call that all nodes see (``engines/calls``). The service
(``services/calls/service.py``) loads a call, runs a step here, stores the result only if nobody changed the
call meanwhile (compare-and-set on ``version``), then performs the effects: frames to send, the call record
to store in the private conversation.

States::

    ringing --accept--> active --hangup / lost--> ended (completed, with its duration)
    ringing --reject--> ended (declined)       ringing --cancel / caller lost--> ended (cancelled)
    ringing --45 s----> ended (missed)

A call binds **connections**, not just users: the caller's device that invited, and the callee's device
that accepted first. Signalling (SDP, ICE, hang-up) is accepted only from those two and sent only to the
other one; the callee's other devices ring until one answers and then hear ``answered_elsewhere``. A device
whose connection drops during an answered call is parked and may ``resume`` on a new connection from the
same terminal within the reconnect grace.

Liveness: each bound connection's node renews its ``*_seen`` time every few seconds (``touch``). If a node
dies, nobody renews its party's time and ``tick`` ends the call ``lost`` after ``lease_ms``, on any node: no
user stays "busy" because a node vanished.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec

from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.protocol import frames

#: No answer within this long: the call is missed (the issue's 45 s).
RING_TIMEOUT_MS = 45_000
#: A bound connection not renewed for this long is gone (its node died): the call ends ``lost``.
LEASE_MS = 30_000
#: Largest SDP accepted (a video offer with simulcast is a few KB; 16 KiB leaves room, and a flood of huge
#: ones cannot ride on a call).
MAX_SDP_CHARS = 16 * 1024
#: Largest ICE candidate object, encoded.
MAX_CANDIDATE_BYTES = 1024


class State(StrEnum):
    RINGING = "ringing"
    ACTIVE = "active"
    ENDED = "ended"


class Reason(StrEnum):
    HANGUP = "hangup"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"
    ANSWERED_ELSEWHERE = "answered_elsewhere"
    LOST = "lost"


class RecordKind(StrEnum):
    """What the call leaves in the private conversation (a message of type ``call``)."""

    MISSED = "missed"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    COMPLETED = "completed"


class Call(msgspec.Struct, kw_only=True):
    """One call, as stored where every node sees it. ``version`` grows with every change."""

    id: str
    caller: int
    callee: int
    media: str
    state: str
    created_at: int
    caller_conn: str
    callee_conn: str = ""
    #: The terminals of the two devices: a device that reconnects (same user, same terminal: the registry
    #: allows one connection per pair) may resume the call on its new connection.
    caller_terminal: str = ""
    callee_terminal: str = ""
    accepted_at: int = 0
    ended_at: int = 0
    reason: str = ""
    #: A callee device reported it is ringing.
    ringing: bool = False
    caller_seen: int = 0
    callee_seen: int = 0
    #: The call's own timings (from config when it was placed), so every node applies the same ones.
    ring_ms: int = RING_TIMEOUT_MS
    lease_ms: int = LEASE_MS
    version: int = 0

    def info(self) -> frames.CallInfo:
        return frames.CallInfo(
            id=self.id,
            caller=self.caller,
            callee=self.callee,
            media=self.media,
            state=self.state,
            created_at=self.created_at,
            accepted_at=self.accepted_at,
        )

    def peer_of(self, user: int) -> int:
        return self.callee if user == self.caller else self.caller


@dataclass(frozen=True)
class Send:
    """One frame for one user: to ``only_conn`` if set, else to all their devices but ``exclude_conn``."""

    user: int
    frame: frames.ServerFrame
    only_conn: str | None = None
    exclude_conn: str | None = None


@dataclass(frozen=True)
class Record:
    kind: RecordKind
    duration_ms: int = 0


@dataclass
class Outcome:
    """The call after a step (``changed``: store it), and what to do once it is stored."""

    call: Call
    changed: bool = False
    sends: list[Send] = field(default_factory=list)
    record: Record | None = None


def deadline(call: Call) -> int:
    """When ``tick`` must next look at the call (ms): the ring timeout, or the older party's lease end."""
    if call.state == State.RINGING:
        return min(call.created_at + call.ring_ms, call.caller_seen + call.lease_ms)
    if call.state == State.ACTIVE:
        return min(call.caller_seen, call.callee_seen) + call.lease_ms
    return call.ended_at


def new_call(
    call_id: str,
    caller: int,
    callee: int,
    media: str,
    conn: str,
    now: int,
    *,
    terminal: str = "",
    ring_ms: int = RING_TIMEOUT_MS,
    lease_ms: int = LEASE_MS,
) -> Outcome:
    """A new ringing call. The service has checked friendship; the store decides busy atomically."""
    if caller == callee:
        raise invalid("to", "you cannot call yourself")
    if media not in ("audio", "video"):
        raise invalid("media", "audio or video")
    call = Call(
        id=call_id,
        caller=caller,
        callee=callee,
        media=media,
        state=State.RINGING,
        created_at=now,
        caller_conn=conn,
        caller_terminal=terminal,
        caller_seen=now,
        ring_ms=ring_ms,
        lease_ms=lease_ms,
    )
    return Outcome(call, True, [Send(callee, frames.CallIncoming(call=call.info()))])


def _party(call: Call, user: int) -> None:
    """Anyone but the two parties is told the call does not exist, as for any other's conversation."""
    if user not in (call.caller, call.callee):
        raise HubbubError(Code.NOT_FOUND, "call not found")


def _over(call: Call) -> None:
    if call.state == State.ENDED:
        raise HubbubError(Code.NOT_FOUND, "call not found (it has ended)")


def _bound(call: Call, user: int, conn: str) -> None:
    """Only the device in the call may speak for it."""
    mine = call.caller_conn if user == call.caller else call.callee_conn
    if not mine or conn != mine:
        raise HubbubError(Code.FORBIDDEN, "this call is on another of your devices")


def _end(call: Call, reason: Reason, now: int, by: int = 0) -> Outcome:
    """End the call: both parties hear why, and the record fits how far it got."""
    answered = call.state == State.ACTIVE
    duration = now - call.accepted_at if answered else 0
    ended = msgspec.structs.replace(call, state=State.ENDED, ended_at=now, reason=reason)
    frame = frames.CallEnded(call=call.id, reason=reason, duration_ms=duration, by=by)
    # Every device of both: the ringing ones stop, the others drop their "in a call" state.
    sends = [Send(call.caller, frame), Send(call.callee, frame)]
    if answered:
        record = Record(RecordKind.COMPLETED, duration)
    elif reason == Reason.DECLINED:
        record = Record(RecordKind.DECLINED)
    elif reason == Reason.TIMEOUT:
        record = Record(RecordKind.MISSED)
    else:
        record = Record(RecordKind.CANCELLED)
    return Outcome(ended, True, sends, record)


def ring(call: Call, user: int, conn: str, now: int) -> Outcome:
    """A callee device shows the call: the caller hears ``call_ringing`` (once)."""
    _party(call, user)
    _over(call)
    if user != call.callee:
        raise HubbubError(Code.FORBIDDEN, "only the callee's devices ring")
    if call.state != State.RINGING or call.ringing:
        return Outcome(call)
    rung = msgspec.structs.replace(call, ringing=True)
    return Outcome(
        rung, True, [Send(call.caller, frames.CallRinging(call=call.id), only_conn=call.caller_conn)]
    )


def accept(call: Call, user: int, conn: str, now: int, terminal: str = "") -> Outcome:
    """The first callee device to accept gets the call; the others stop with ``answered_elsewhere``."""
    _party(call, user)
    _over(call)
    if user != call.callee:
        raise HubbubError(Code.FORBIDDEN, "only the callee can accept")
    if call.state == State.ACTIVE:
        if call.callee_conn == conn:
            return Outcome(call)  # a retried accept
        raise HubbubError(Code.CONFLICT, "the call was answered on another device")
    active = msgspec.structs.replace(
        call, state=State.ACTIVE, callee_conn=conn, callee_terminal=terminal, accepted_at=now, callee_seen=now
    )
    sends = [
        Send(call.caller, frames.CallAccepted(call=call.id, media=call.media), only_conn=call.caller_conn),
        Send(
            call.callee,
            frames.CallEnded(call=call.id, reason=Reason.ANSWERED_ELSEWHERE),
            exclude_conn=conn,
        ),
    ]
    return Outcome(active, True, sends)


def reject(call: Call, user: int, conn: str, now: int) -> Outcome:
    """Any callee device may decline a ringing call; it ends for all."""
    _party(call, user)
    _over(call)
    if user != call.callee:
        raise HubbubError(Code.FORBIDDEN, "only the callee can decline; the caller cancels")
    if call.state != State.RINGING:
        raise HubbubError(Code.CONFLICT, "the call was already answered; hang up instead")
    return _end(call, Reason.DECLINED, now, by=user)


def cancel(call: Call, user: int, conn: str, now: int) -> Outcome:
    """The caller gives up: from any of their devices, in any state (answered: it is a hang-up)."""
    _party(call, user)
    _over(call)
    if user != call.caller:
        raise HubbubError(Code.FORBIDDEN, "only the caller can cancel; the callee declines")
    if call.state == State.ACTIVE:
        return _end(call, Reason.HANGUP, now, by=user)
    return _end(call, Reason.CANCELLED, now, by=user)


def hangup(call: Call, user: int, conn: str, now: int) -> Outcome:
    """Either party ends the call. Before an answer, the caller's hang-up cancels and the callee's declines."""
    _party(call, user)
    _over(call)
    if call.state == State.RINGING:
        return cancel(call, user, conn, now) if user == call.caller else reject(call, user, conn, now)
    _bound(call, user, conn)
    return _end(call, Reason.HANGUP, now, by=user)


def sdp(call: Call, user: int, conn: str, kind: str, text: str, now: int) -> Outcome:
    """Relay an offer or answer to the other device. Only once answered, and only between the bound two."""
    _party(call, user)
    _over(call)
    if len(text) > MAX_SDP_CHARS:
        raise HubbubError(Code.TOO_LARGE, f"sdp: at most {MAX_SDP_CHARS} characters")
    if call.state != State.ACTIVE:
        raise HubbubError(Code.CONFLICT, "the call is not answered yet")
    _bound(call, user, conn)
    peer = call.peer_of(user)
    target = call.callee_conn if peer == call.callee else call.caller_conn
    if not target:  # the other device is reconnecting: it renegotiates after resuming
        return Outcome(call)
    return Outcome(call, False, [Send(peer, frames.CallSdpPush(call=call.id, kind=kind, sdp=text), target)])


def ice(call: Call, user: int, conn: str, candidate: dict[str, Any] | None, now: int) -> Outcome:
    """Relay an ICE candidate to the other device (same rules as ``sdp``)."""
    _party(call, user)
    _over(call)
    if candidate is not None and len(msgspec.json.encode(candidate)) > MAX_CANDIDATE_BYTES:
        raise HubbubError(Code.TOO_LARGE, f"candidate: at most {MAX_CANDIDATE_BYTES} bytes")
    if call.state != State.ACTIVE:
        raise HubbubError(Code.CONFLICT, "the call is not answered yet")
    _bound(call, user, conn)
    peer = call.peer_of(user)
    target = call.callee_conn if peer == call.callee else call.caller_conn
    if not target:
        return Outcome(call)
    return Outcome(call, False, [Send(peer, frames.CallIcePush(call=call.id, candidate=candidate), target)])


def touch(call: Call, conn: str, now: int) -> Outcome:
    """A bound connection is still there (its node renews this): its party's lease starts again."""
    if call.state == State.ENDED:
        return Outcome(call)
    if conn and conn == call.caller_conn:
        return Outcome(msgspec.structs.replace(call, caller_seen=now), True)
    if conn and conn == call.callee_conn:
        return Outcome(msgspec.structs.replace(call, callee_seen=now), True)
    return Outcome(call)


def disconnected(call: Call, conn: str, now: int, grace_ms: int = 0) -> Outcome:
    """A connection closed. Ringing, the caller's going away cancels the call (a callee device that was only
    ringing changes nothing). Answered, the party is *parked*: its device may reconnect (to any node) and
    ``resume`` within ``grace_ms``, while the media goes on between the browsers; otherwise ``tick`` ends the
    call ``lost`` then. A grace of 0 ends it at once."""
    if call.state == State.ENDED:
        return Outcome(call)
    if call.state == State.RINGING:
        return _end(call, Reason.CANCELLED, now) if conn == call.caller_conn else Outcome(call)
    if conn not in (call.caller_conn, call.callee_conn):
        return Outcome(call)
    if grace_ms <= 0:
        return _end(call, Reason.LOST, now)
    # Its lease now ends in grace_ms (if that is sooner), and nothing reaches or comes from the old connection.
    seen = min(now - call.lease_ms + grace_ms, now)
    if conn == call.caller_conn:
        parked = msgspec.structs.replace(call, caller_conn="", caller_seen=min(call.caller_seen, seen))
    else:
        parked = msgspec.structs.replace(call, callee_conn="", callee_seen=min(call.callee_seen, seen))
    return Outcome(parked, True)


def resume(call: Call, user: int, conn: str, terminal: str, now: int) -> Outcome:
    """The device in an answered call came back on a new connection (a dropped network, a node that was
    drained or died): bind the call to it. Only from the same terminal as before: another device of the same
    person cannot take the call over."""
    _party(call, user)
    _over(call)
    if call.state != State.ACTIVE:
        raise HubbubError(Code.CONFLICT, "the call is not answered")
    mine = call.caller_terminal if user == call.caller else call.callee_terminal
    if not terminal or terminal != mine:
        raise HubbubError(Code.FORBIDDEN, "this call is on another of your devices")
    if user == call.caller:
        moved = msgspec.structs.replace(call, caller_conn=conn, caller_seen=now)
    else:
        moved = msgspec.structs.replace(call, callee_conn=conn, callee_seen=now)
    return Outcome(moved, True)


def tick(call: Call, now: int) -> Outcome:
    """Deadlines: unanswered for ``ring_ms`` is missed; a party unrenewed for ``lease_ms`` is lost."""
    if call.state == State.ENDED or now < deadline(call):
        return Outcome(call)
    if call.state == State.RINGING and now >= call.created_at + call.ring_ms:
        return _end(call, Reason.TIMEOUT, now)
    if call.state == State.RINGING:
        return _end(call, Reason.CANCELLED, now)  # the caller's node is gone
    return _end(call, Reason.LOST, now)
