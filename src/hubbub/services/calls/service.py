"""Calls between two friends: load the call, apply a rule (``machine.py``), store it, then tell the parties.

Docs: docs/protocol.md, "Calls"; docs/architecture.md, "Calls".

Every change goes through ``_apply``: read the call and its version from the store every node shares, run the
pure step, and write the result only if the version is unchanged (compare-and-set). A step that lost a race
(the callee's other device accepted first, a timeout fired on another node) is simply run again on the
fresh call, so the rules decide the outcome, never the timing. Effects come after the write: frames through
routing (the same path on one node or many), and for an ended call its record, a message of type
``call`` stored in the private conversation through ``MessageService.post``, so it is synced like
any message (an offline callee finds "missed call" after sync).

Each node runs one sweeper task: it ticks calls whose deadline passed (ring timeout, lost parties; any
node may, the compare-and-set lets one win) and renews the lease of the calls bound to its own connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Callable
from typing import Any

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import private_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.ids import MessageIds
from hubbub.engines.calls.base import CallStore
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.routing.base import Event, Routing
from hubbub.engines.storage.base import NewMessage, Storage
from hubbub.protocol.frames import encode
from hubbub.services.calls import machine
from hubbub.services.calls.machine import Call, Outcome, State
from hubbub.services.friends import FriendService
from hubbub.services.limits import enforce
from hubbub.services.messages import SYSTEM_CMID_PREFIX, MessageService

log = logging.getLogger(__name__)

#: The message type of call records (clients cannot send it: it has no content validator).
CALL_TYPE = "call"
#: Compare-and-set attempts before giving up with ``conflict`` (each retry means another change won).
_ATTEMPTS = 8
#: How often the sweeper looks for due calls (seconds); timeouts fire within this of their deadline.
SWEEP_S = 1.0

Step = Callable[[Call, int], Outcome]
_decode = msgspec.json.Decoder(Call).decode


class CallService:
    def __init__(
        self,
        config: Config,
        store: CallStore,
        routing: Routing,
        storage: Storage,
        friends: FriendService,
        messages: MessageService,
        ids: MessageIds,
        limiter: RateLimiter,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.config = config
        self.store = store
        self.routing = routing
        self.storage = storage
        self.friends = friends
        self.messages = messages
        self.ids = ids
        self.limiter = limiter
        self.clock = clock
        #: This node's connections bound to a call (conn id -> call id): their leases are renewed here.
        self.local: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    # -- requests from a party ------------------------------------------------------------------
    async def invite(self, user: int, conn: str, to: int, media: str, terminal: str = "") -> Call:
        """Ring every device of ``to``. Refused: yourself (``invalid_field``), too many invites
        (``rate_limited``), a stranger (``not_friends``, or ``not_found`` for no such user), either party in a
        call already (``busy``). A refusal leaves nothing behind."""
        if to == user:
            raise invalid("to", "you cannot call yourself")
        await enforce(
            self.limiter,
            f"call:{user}",
            self.config.call_invite_per_minute / 60,
            self.config.call_invite_burst,
        )
        if not await self.friends.are_friends(user, to):
            if not await self.storage.users([to]):
                raise not_found("user")
            raise HubbubError(Code.NOT_FRIENDS, "you can only call friends")
        await self.friends.check_not_blocked(user, to)  # issue 15: a blocked pair cannot call
        now = self.clock()
        outcome = machine.new_call(
            secrets.token_urlsafe(12),
            user,
            to,
            media,
            conn,
            now,
            terminal=terminal,
            ring_ms=int(self.config.call_ring_timeout_s * 1000),
            lease_ms=int(self.config.call_lease_s * 1000),
        )
        call = outcome.call
        busy = await self.store.create(
            call.id, (call.caller, call.callee), encode(call), machine.deadline(call), _ttl(call, now)
        )
        if busy == user:
            raise HubbubError(Code.BUSY, "you are already in a call: hang up first")
        if busy is not None:
            raise HubbubError(Code.BUSY, "they are in another call")
        call.version = 1
        self.local[conn] = call.id
        await self._effects(outcome)
        return call

    async def ring(self, user: int, conn: str, call_id: str) -> None:
        await self._apply(call_id, lambda c, now: machine.ring(c, user, conn, now))

    async def accept(self, user: int, conn: str, call_id: str, terminal: str = "") -> Call:
        outcome = await self._apply(call_id, lambda c, now: machine.accept(c, user, conn, now, terminal))
        self.local[conn] = call_id
        return outcome.call

    async def resume(self, user: int, conn: str, call_id: str, terminal: str) -> Call:
        """The device in the call reconnected (on any node): the call follows it to this connection."""
        outcome = await self._apply(call_id, lambda c, now: machine.resume(c, user, conn, terminal, now))
        self.local[conn] = call_id
        return outcome.call

    async def reject(self, user: int, conn: str, call_id: str) -> None:
        await self._apply(call_id, lambda c, now: machine.reject(c, user, conn, now))

    async def cancel(self, user: int, conn: str, call_id: str) -> None:
        await self._apply(call_id, lambda c, now: machine.cancel(c, user, conn, now))

    async def hangup(self, user: int, conn: str, call_id: str) -> None:
        await self._apply(call_id, lambda c, now: machine.hangup(c, user, conn, now))

    async def sdp(self, user: int, conn: str, call_id: str, kind: str, sdp: str) -> None:
        await self._apply(call_id, lambda c, now: machine.sdp(c, user, conn, kind, sdp, now))

    async def ice(self, user: int, conn: str, call_id: str, candidate: dict[str, Any] | None) -> None:
        await self._apply(call_id, lambda c, now: machine.ice(c, user, conn, candidate, now))

    async def current(self, user: int) -> Call | None:
        """The call the user is in, if any (for tests and operators: no state left behind)."""
        call_id = await self.store.of_user(user)
        if call_id is None:
            return None
        found = await self.store.get(call_id)
        return _load(found) if found is not None else None

    # -- connections and time -------------------------------------------------------------------
    async def disconnected(self, conn: str) -> None:
        """A connection of this node closed: a ringing call it placed is cancelled; an answered one waits
        ``call_reconnect_s`` for its device to come back and ``call_resume`` (then ends ``lost``)."""
        call_id = self.local.pop(conn, None)
        if call_id is None:
            return
        grace = int(self.config.call_reconnect_s * 1000)
        with contextlib.suppress(HubbubError):
            await self._apply(call_id, lambda c, now: machine.disconnected(c, conn, now, grace))

    async def sweep(self) -> None:
        """Tick every call whose deadline passed (on whichever node gets there first)."""
        now = self.clock()
        for call_id in await self.store.due(now):
            with contextlib.suppress(HubbubError):
                await self._apply(call_id, machine.tick)

    async def renew(self) -> None:
        """Renew the lease of every call bound to one of this node's connections."""
        for conn, call_id in list(self.local.items()):
            try:
                await self._apply(call_id, _touch(conn))
            except HubbubError as exc:
                if exc.code is Code.NOT_FOUND:
                    self.local.pop(conn, None)  # ended elsewhere

    @property
    def running(self) -> bool:
        """Is this node's sweeper (and lease renewal) running? Only where the role holds connections."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        renewed = 0.0
        loop = asyncio.get_running_loop()
        # Bound connections renew their lease every third of it, so two missed renewals still hold.
        every = self.config.call_lease_s / 3
        while True:
            await asyncio.sleep(min(SWEEP_S, every))
            try:
                await self.sweep()
                if loop.time() - renewed >= every:
                    renewed = loop.time()
                    await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("call sweep failed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.store.close()

    # -- the one way a call changes ----------------------------------------------------------------
    async def _apply(self, call_id: str, step: Step) -> Outcome:
        for _ in range(_ATTEMPTS):
            found = await self.store.get(call_id)
            if found is None:
                raise HubbubError(Code.NOT_FOUND, "call not found (it may have ended)")
            call = _load(found)
            now = self.clock()
            outcome = step(call, now)
            if not outcome.changed:
                await self._effects(outcome)
                return outcome
            new = outcome.call
            ended = new.state == State.ENDED
            written = await self.store.save(
                call.id,
                (call.caller, call.callee),
                encode(new),
                call.version,
                ended=ended,
                due=machine.deadline(new),
                ttl_ms=_ttl(new, now),
            )
            if written:
                new.version = call.version + 1
                if ended:
                    for conn in (new.caller_conn, new.callee_conn):
                        if self.local.get(conn) == call.id:
                            del self.local[conn]
                await self._effects(outcome)
                return outcome
        raise HubbubError(Code.CONFLICT, "the call kept changing; try again")

    async def _effects(self, outcome: Outcome) -> None:
        """After the write: the frames, then the record of an ended call."""
        events = [
            Event((send.user,), encode(send.frame), send.exclude_conn, send.only_conn)
            for send in outcome.sends
        ]
        if events:
            await self.routing.publish(events)
        if outcome.record is not None:
            call = outcome.call
            body: dict[str, Any] = {"kind": outcome.record.kind.value, "media": call.media, "call": call.id}
            if outcome.record.duration_ms:
                body["duration_ms"] = outcome.record.duration_ms
            # The cmid is derived from the call, so a record stored twice (a retried effect) is one message.
            notice = NewMessage(
                id=self.ids.next(),
                conv=private_conv(call.caller, call.callee),
                sender=call.caller,
                cmid=f"{SYSTEM_CMID_PREFIX}call:{call.id}",
                type=CALL_TYPE,
                body=body,
                ts=call.ended_at,
                members=tuple(sorted((call.caller, call.callee))),
            )
            try:
                await self.messages.post([notice])
            except HubbubError:
                log.exception("storing the record of call %s failed", call.id)


def _touch(conn: str) -> Step:
    return lambda call, now: machine.touch(call, conn, now)


def _load(found: tuple[int, bytes]) -> Call:
    version, data = found
    call = _decode(data)
    call.version = version
    return call


def _ttl(call: Call, now: int) -> int:
    """How long the stored call outlives its deadline if no node is left to tick it: one more lease."""
    return max(machine.deadline(call) - now, 0) + call.lease_ms
