"""The call rules (services/calls/machine.py) with a fake clock: every transition, the deadlines, busy, and
the race between two devices accepting at once (through the service's compare-and-set on a memory store)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.engines.calls.memory import MemoryCallStore
from hubbub.protocol import frames
from hubbub.services.calls import machine
from hubbub.services.calls.ice import ice_servers, turn_credentials
from hubbub.services.calls.machine import LEASE_MS, RING_TIMEOUT_MS, Reason, RecordKind, State
from hubbub.services.calls.service import CallService

A, B, C = 1, 2, 3
T0 = 1_000_000


def ringing(media: str = "video") -> machine.Call:
    return machine.new_call("c1", A, B, media, "a/1", T0).call


def active(at: int = T0 + 1000) -> machine.Call:
    return machine.accept(ringing(), B, "b/1", at).call


def codes(exc: pytest.ExceptionInfo[HubbubError]) -> Code:
    return exc.value.code


def test_invite_rings_every_callee_device() -> None:
    out = machine.new_call("c1", A, B, "audio", "a/1", T0)
    assert out.call.state == State.RINGING and out.changed
    [send] = out.sends
    assert send.user == B and send.only_conn is None and isinstance(send.frame, frames.CallIncoming)
    assert machine.deadline(out.call) == T0 + min(RING_TIMEOUT_MS, LEASE_MS)  # the caller's lease first


@pytest.mark.parametrize(("callee", "media"), [(A, "audio"), (B, "screen")])
def test_invite_refuses_oneself_and_unknown_media(callee: int, media: str) -> None:
    with pytest.raises(HubbubError) as exc:
        machine.new_call("c1", A, callee, media, "a/1", T0)
    assert codes(exc) is Code.INVALID_FIELD


def test_ring_tells_the_callers_device_once() -> None:
    out = machine.ring(ringing(), B, "b/2", T0 + 5)
    assert out.changed and out.call.ringing
    [send] = out.sends
    assert (send.user, send.only_conn) == (A, "a/1") and isinstance(send.frame, frames.CallRinging)
    again = machine.ring(out.call, B, "b/1", T0 + 6)
    assert not again.changed and not again.sends
    with pytest.raises(HubbubError) as exc:
        machine.ring(ringing(), A, "a/1", T0)
    assert codes(exc) is Code.FORBIDDEN


def test_accept_binds_the_device_and_stops_the_others() -> None:
    out = machine.accept(ringing(), B, "b/1", T0 + 1000)
    call = out.call
    assert (call.state, call.callee_conn, call.accepted_at) == (State.ACTIVE, "b/1", T0 + 1000)
    to_caller, to_others = out.sends
    assert to_caller.only_conn == "a/1" and isinstance(to_caller.frame, frames.CallAccepted)
    assert to_others.user == B and to_others.exclude_conn == "b/1"
    assert (
        isinstance(to_others.frame, frames.CallEnded) and to_others.frame.reason == Reason.ANSWERED_ELSEWHERE
    )
    assert out.record is None


def test_accept_twice() -> None:
    call = active()
    assert not machine.accept(call, B, "b/1", T0 + 2000).changed  # the same device retrying
    with pytest.raises(HubbubError) as exc:
        machine.accept(call, B, "b/2", T0 + 2000)  # another device, too late
    assert codes(exc) is Code.CONFLICT
    with pytest.raises(HubbubError) as exc:
        machine.accept(ringing(), A, "a/1", T0)  # the caller
    assert codes(exc) is Code.FORBIDDEN


def test_reject_declines_for_every_device() -> None:
    out = machine.reject(ringing(), B, "b/2", T0 + 10)
    assert out.call.state == State.ENDED and out.call.reason == Reason.DECLINED
    assert {s.user for s in out.sends} == {A, B} and all(s.only_conn is None for s in out.sends)
    assert out.record == machine.Record(RecordKind.DECLINED)
    with pytest.raises(HubbubError) as exc:
        machine.reject(active(), B, "b/1", T0 + 2000)
    assert codes(exc) is Code.CONFLICT
    with pytest.raises(HubbubError) as exc:
        machine.reject(ringing(), A, "a/1", T0)
    assert codes(exc) is Code.FORBIDDEN


def test_cancel_from_any_caller_device_and_any_state() -> None:
    out = machine.cancel(ringing(), A, "a/other-device", T0 + 10)
    assert out.call.reason == Reason.CANCELLED and out.record == machine.Record(RecordKind.CANCELLED)
    out = machine.cancel(active(T0 + 1000), A, "a/other-device", T0 + 61_000)
    assert out.call.reason == Reason.HANGUP and out.record == machine.Record(RecordKind.COMPLETED, 60_000)
    with pytest.raises(HubbubError) as exc:
        machine.cancel(ringing(), B, "b/1", T0)
    assert codes(exc) is Code.FORBIDDEN


def test_hangup() -> None:
    out = machine.hangup(active(T0 + 1000), B, "b/1", T0 + 31_000)
    ended = out.sends[0].frame
    assert isinstance(ended, frames.CallEnded) and (ended.duration_ms, ended.by) == (30_000, B)
    assert out.record == machine.Record(RecordKind.COMPLETED, 30_000)
    # Before an answer: the caller's hang-up cancels, the callee's declines.
    assert machine.hangup(ringing(), A, "a/1", T0).call.reason == Reason.CANCELLED
    assert machine.hangup(ringing(), B, "b/3", T0).call.reason == Reason.DECLINED
    with pytest.raises(HubbubError) as exc:
        machine.hangup(active(), B, "b/2", T0 + 2000)  # not the device in the call
    assert codes(exc) is Code.FORBIDDEN


def test_signalling_goes_only_between_the_two_bound_devices() -> None:
    call = active()
    out = machine.sdp(call, A, "a/1", "offer", "v=0", T0 + 2000)
    assert not out.changed
    [send] = out.sends
    assert (send.user, send.only_conn) == (B, "b/1") and isinstance(send.frame, frames.CallSdpPush)
    out = machine.ice(call, B, "b/1", {"candidate": "candidate:1 1 udp 1 10.0.0.1 9 typ host"}, T0 + 2000)
    [send] = out.sends
    assert (send.user, send.only_conn) == (A, "a/1")
    renegotiate = machine.sdp(call, B, "b/1", "offer", "v=0 video", T0 + 9000)  # camera on mid-call
    assert renegotiate.sends[0].only_conn == "a/1"
    for user, conn in ((A, "a/2"), (B, "b/2")):
        with pytest.raises(HubbubError) as exc:
            machine.sdp(call, user, conn, "offer", "v=0", T0 + 2000)
        assert codes(exc) is Code.FORBIDDEN
    with pytest.raises(HubbubError) as exc:
        machine.sdp(ringing(), A, "a/1", "offer", "v=0", T0)
    assert codes(exc) is Code.CONFLICT


def test_outsiders_and_ended_calls_are_not_found() -> None:
    for step in (machine.ring, machine.accept, machine.reject, machine.cancel, machine.hangup):
        with pytest.raises(HubbubError) as exc:
            step(ringing(), C, "c/1", T0)
        assert codes(exc) is Code.NOT_FOUND
    with pytest.raises(HubbubError) as exc:
        machine.sdp(active(), C, "c/1", "offer", "v=0", T0)
    assert codes(exc) is Code.NOT_FOUND
    ended = machine.hangup(active(), A, "a/1", T0 + 5000).call
    with pytest.raises(HubbubError) as exc:
        machine.hangup(ended, B, "b/1", T0 + 6000)
    assert codes(exc) is Code.NOT_FOUND


def test_size_limits() -> None:
    with pytest.raises(HubbubError) as exc:
        machine.sdp(active(), A, "a/1", "offer", "x" * (machine.MAX_SDP_CHARS + 1), T0)
    assert codes(exc) is Code.TOO_LARGE
    with pytest.raises(HubbubError) as exc:
        machine.ice(active(), A, "a/1", {"candidate": "x" * machine.MAX_CANDIDATE_BYTES}, T0)
    assert codes(exc) is Code.TOO_LARGE


def test_ring_timeout_is_a_missed_call() -> None:
    call = machine.touch(ringing(), "a/1", T0 + 20_000).call  # the caller's node renews meanwhile
    assert not machine.tick(call, T0 + RING_TIMEOUT_MS - 1).changed
    out = machine.tick(call, T0 + RING_TIMEOUT_MS)
    assert out.call.reason == Reason.TIMEOUT and out.record == machine.Record(RecordKind.MISSED)


def test_lost_leases_end_the_call() -> None:
    call = active(T0 + 1000)
    assert machine.deadline(call) == T0 + LEASE_MS  # the caller was last seen at the invite
    call = machine.touch(call, "a/1", T0 + 20_000).call
    call = machine.touch(call, "b/1", T0 + 21_000).call
    assert not machine.touch(call, "b/9", T0 + 22_000).changed  # not bound: nothing to renew
    assert machine.deadline(call) == T0 + 20_000 + LEASE_MS
    assert not machine.tick(call, T0 + 20_000 + LEASE_MS - 1).changed
    out = machine.tick(call, T0 + 20_000 + LEASE_MS)  # the caller's node stopped renewing: it died
    assert out.call.reason == Reason.LOST and out.record == machine.Record(RecordKind.COMPLETED, 49_000)
    # Ringing, and the caller's node died: cancelled well before the 45 s if the lease is shorter.
    stale = machine.tick(ringing(), T0 + min(LEASE_MS, RING_TIMEOUT_MS))
    assert stale.changed and stale.call.state == State.ENDED


def test_disconnects() -> None:
    assert machine.disconnected(ringing(), "a/1", T0 + 5).call.reason == Reason.CANCELLED
    assert not machine.disconnected(ringing(), "b/1", T0 + 5).changed  # a ringing device went away
    assert machine.disconnected(active(), "b/1", T0 + 5000).call.reason == Reason.LOST  # no grace
    assert not machine.disconnected(active(), "b/2", T0 + 5000, 10_000).changed


def answered(terminal: str = "web") -> machine.Call:
    placed = machine.new_call("c1", A, B, "video", "a/1", T0, terminal="desktop").call
    return machine.accept(placed, B, "b/1", T0 + 1000, terminal).call


def test_a_dropped_device_is_parked_and_may_resume_from_the_same_terminal() -> None:
    parked = machine.disconnected(answered(), "b/1", T0 + 5000, 10_000)
    call = parked.call
    assert parked.changed and not parked.sends and call.state == State.ACTIVE and call.callee_conn == ""
    assert machine.deadline(call) == T0 + 15_000  # the grace, not the whole lease
    # Meanwhile the caller's signalling goes nowhere (no error: the other side renegotiates after resuming),
    # and nothing can speak for the parked side.
    assert not machine.sdp(call, A, "a/1", "offer", "v=0", T0 + 6000).sends
    with pytest.raises(HubbubError) as exc:
        machine.sdp(call, B, "b/1", "offer", "v=0", T0 + 6000)
    assert codes(exc) is Code.FORBIDDEN
    for user, terminal in ((B, "mobile"), (B, ""), (C, "web")):
        with pytest.raises(HubbubError) as exc:
            machine.resume(call, user, "b/9", terminal, T0 + 7000)
        assert codes(exc) is (Code.NOT_FOUND if user == C else Code.FORBIDDEN)
    back = machine.resume(call, B, "b/2", "web", T0 + 8000).call
    assert back.callee_conn == "b/2" and back.callee_seen == T0 + 8000
    assert machine.sdp(back, A, "a/1", "offer", "v=0", T0 + 9000).sends[0].only_conn == "b/2"
    # Not back in time: lost.
    assert machine.tick(call, T0 + 15_000).call.reason == Reason.LOST
    with pytest.raises(HubbubError) as exc:
        machine.resume(ringing(), A, "a/2", "", T0)
    assert codes(exc) is Code.CONFLICT


def test_turn_credentials_follow_the_rest_api_scheme() -> None:
    # Worked example: the HMAC-SHA1 of the username with the secret, base64 (coturn's use-auth-secret).
    import base64
    import hashlib
    import hmac

    username, password = turn_credentials("s3cret", 42, 1_700_000_000)
    assert username == "1700000000:42"
    expected = base64.b64encode(hmac.new(b"s3cret", b"1700000000:42", hashlib.sha1).digest()).decode()
    assert password == expected
    config = Config(call_stun_urls="stun:a:3478", call_turn_urls="turn:a:3478", call_turn_secret="s3cret")
    found = ice_servers(config, 42, 1000)
    assert [s.urls for s in found.ice_servers] == [["stun:a:3478"], ["turn:a:3478"]]
    assert found.ice_servers[1].username == f"{1000 + config.call_turn_ttl_s}:42"
    assert ice_servers(Config(call_turn_urls="turn:a:3478"), 42, 1000).ice_servers == []  # no secret, no TURN


# -- the service: compare-and-set, busy, records -------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class YieldingStore(MemoryCallStore):
    """A memory store that yields at every call, so concurrent steps interleave as over a network."""

    async def get(self, call_id: str) -> tuple[int, bytes] | None:
        await asyncio.sleep(0)
        return await super().get(call_id)

    async def save(self, *args: Any, **kwargs: Any) -> bool:
        await asyncio.sleep(0)
        return await super().save(*args, **kwargs)


class Fakes:
    def __init__(self) -> None:
        self.published: list[Any] = []
        self.records: list[Any] = []
        #: Pairs where one blocked the other (issue 15), as FriendService.check_not_blocked sees them.
        self.blocked: set[frozenset[int]] = set()

    async def check_not_blocked(self, a: int, b: int) -> None:
        if frozenset((a, b)) in self.blocked:
            raise HubbubError(Code.BLOCKED, "blocked")

    async def publish(self, events: Any) -> None:
        self.published.extend(events)

    async def post(self, notices: Any) -> None:
        self.records.extend(notices)

    async def are_friends(self, a: int, b: int) -> bool:
        return C not in (a, b) and max(a, b) < 100

    async def users(self, ids: Any) -> list[Any]:
        return [object() for i in ids if i < 100]

    async def take(self, key: str, rate: float, burst: int) -> float:
        return 0.0

    def next(self) -> int:
        return len(self.records) + 1


def service(clock: Clock) -> tuple[CallService, Fakes]:
    fakes = Fakes()
    any_ = cast(Any, fakes)
    return CallService(Config(), YieldingStore(), any_, any_, any_, any_, any_, any_, clock), fakes


async def test_two_devices_accept_at_once_one_wins() -> None:
    clock = Clock()
    calls, fakes = service(clock)
    call = await calls.invite(A, "a/1", B, "video")
    results = await asyncio.gather(
        calls.accept(B, "b/1", call.id), calls.accept(B, "b/2", call.id), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, machine.Call)]
    lost = [r for r in results if isinstance(r, HubbubError)]
    assert len(won) == 1 and len(lost) == 1 and lost[0].code is Code.CONFLICT
    current = await calls.current(B)
    assert current is not None and current.callee_conn == won[0].callee_conn


async def test_busy_and_nothing_left_behind() -> None:
    clock = Clock()
    calls, fakes = service(clock)
    call = await calls.invite(A, "a/1", B, "audio")
    for caller, callee in ((4, B), (B, 4), (A, 4)):
        with pytest.raises(HubbubError) as exc:
            await calls.invite(caller, f"{caller}/1", callee, "audio")
        assert codes(exc) is Code.BUSY
    assert await calls.current(4) is None
    for refused, code in ((C, Code.NOT_FRIENDS), (500, Code.NOT_FOUND), (A, Code.INVALID_FIELD)):
        with pytest.raises(HubbubError) as exc:
            await calls.invite(A, "a/1", refused, "audio")
        assert codes(exc) is code
    await calls.hangup(A, "a/1", call.id)
    assert await calls.current(A) is None and await calls.current(B) is None
    [record] = fakes.records
    assert record.type == "call" and record.body["kind"] == "cancelled" and record.cmid == f"~call:{call.id}"


async def test_sweeper_times_out_and_records_a_missed_call() -> None:
    clock = Clock()
    calls, fakes = service(clock)
    call = await calls.invite(A, "a/1", B, "video")
    clock.now += RING_TIMEOUT_MS - 1
    await calls.renew()  # the caller's node is alive
    await calls.sweep()
    assert await calls.current(A) is not None
    clock.now += 1
    await calls.sweep()
    assert await calls.current(A) is None and await calls.current(B) is None
    assert [r.body["kind"] for r in fakes.records] == ["missed"]
    ended = [e for e in fakes.published if b'"call_ended"' in e.payload]
    assert {e.recipients[0] for e in ended} == {A, B} and b'"timeout"' in ended[0].payload
    with pytest.raises(HubbubError) as exc:
        await calls.accept(B, "b/1", call.id)
    assert codes(exc) is Code.NOT_FOUND


async def test_completed_call_records_its_duration() -> None:
    clock = Clock()
    calls, fakes = service(clock)
    call = await calls.invite(A, "a/1", B, "video")
    clock.now += 2000
    await calls.accept(B, "b/1", call.id)
    clock.now += 65_000
    await calls.renew()
    await calls.sweep()  # both leases renewed: still on
    assert await calls.current(A) is not None
    await calls.disconnected("b/1")  # the callee's network drops: parked for call_reconnect_s
    assert fakes.records == [] and await calls.current(B) is not None
    clock.now += int(calls.config.call_reconnect_s * 1000)
    await calls.sweep()  # not back in time
    [record] = fakes.records
    duration = 65_000 + int(calls.config.call_reconnect_s * 1000)
    assert record.body == {"kind": "completed", "media": "video", "call": call.id, "duration_ms": duration}
    assert calls.local == {} and await calls.current(B) is None


async def test_a_device_resumes_on_a_new_connection() -> None:
    clock = Clock()
    calls, fakes = service(clock)
    call = await calls.invite(A, "a/1", B, "video", "web")
    await calls.accept(B, "b/1", call.id, "mobile")
    await calls.disconnected("a/1")
    clock.now += 3000
    await calls.resume(A, "a/2", call.id, "web")
    clock.now += 60_000
    await calls.renew()  # the new connection renews the lease
    await calls.sweep()
    assert await calls.current(A) is not None and fakes.records == []
    await calls.hangup(A, "a/2", call.id)
    assert [r.body["kind"] for r in fakes.records] == ["completed"]


async def test_a_blocked_pair_cannot_call() -> None:
    calls, fakes = service(Clock())
    fakes.blocked.add(frozenset((A, B)))
    for caller, callee in ((A, B), (B, A)):
        with pytest.raises(HubbubError) as refused:
            await calls.invite(caller, f"{caller}/1", callee, "audio")
        assert refused.value.code is Code.BLOCKED
    assert fakes.published == []
