"""Per-message tracing for admins: where one message went, step by step, without its body.

A message's timeline (``GET /api/v1/admin/trace``, docs/protocol.md "Admin"): ``received`` by a node,
``stored`` with its seq, ``published`` to its recipients (or signalled, in a hot group), ``delivered`` by
each node that had a connection of a recipient (user and terminals), ``pulled`` by members (a pull whose range
covers its seq) and ``read`` (a read mark at or past its seq).

Parts:
- :class:`TraceStore`: where steps are kept, for ``trace_ttl_s`` (default a day). :class:`MemoryTraceStore` is
  a bounded ring for one node; :class:`RedisTraceStore` shares them across a cluster, each key with a TTL.
  Both pass the same contract (tests/contract/test_trace_store.py).
- :class:`Tracer`: what the send path calls. Its hooks are synchronous and only append to a buffer; a
  background task hands the buffer to the store every ``FLUSH_S``. With ``trace_sample`` below 1 only that
  share of messages is traced (chosen from the id, so every node picks the same ones); 0 turns tracing off.

The hooks sit at a few stable points, each one line: ``MessageService._publish_stored`` (received, stored,
published), ``Hub.deliver`` (delivered, on every node), ``MessageService.pull`` / ``pull_encoded`` (pulled) and
``MessageService.mark_read`` (read).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from hubbub.core.clock import now_ms
from hubbub.engines.storage.base import Stored

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from hubbub.config import Config
    from hubbub.engines.redis_link import RedisLink
    from hubbub.engines.routing.base import Event
    from hubbub.engines.storage.base import NewMessage, Rejected

log = logging.getLogger(__name__)

#: Seconds between hand-overs of the buffer to the store (a trace is readable this long after the fact).
FLUSH_S = 0.25
#: A buffer this long is handed over at once.
FLUSH_AT = 2000
#: Steps of one conversation kept (pulls and reads are recorded per conversation, not per message).
CONV_STEPS = 500
_MSG_PREFIX = b'{"type":"msg","msg":{"id":"'


class Step(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One thing that happened to a message (or, for ``pulled``/``read``, to its conversation)."""

    #: received, stored, published, delivered, pulled, read
    step: str
    #: Server time (ms) and the node it happened on.
    at: int
    node: str
    conv: str | None = None
    seq: int | None = None
    #: The sender (received), the reader or puller (pulled, read).
    user: int | None = None
    #: published: the recipients; delivered: those with a connection on this node.
    users: list[int] | None = None
    #: delivered: the terminals written to, as "user/terminal".
    terminals: list[str] | None = None
    #: pulled: the range returned, ``after`` < seq <= ``upto``.
    after: int | None = None
    upto: int | None = None
    #: published: "push" or "push-pull" (a hot group: members are signalled and pull); stored: "duplicate"
    #: for a resend of a message already stored.
    mode: str | None = None
    cmid: str | None = None


class Timeline(msgspec.Struct, kw_only=True):
    message: str
    conv: str | None
    seq: int | None
    sender: int | None
    steps: list[Step]


#: A step as recorded, compact (built on the send path, so it costs a tuple, not a struct; expanded into
#: :class:`Step` s only when someone reads the trace):
#:   ("s", at, node, received_at, sender, cmid, conv, seq, duplicate, hot, recipients)  received+stored+published
#:   ("d", at, node, users, terminals)                                                   delivered
#:   ("p", at, node, user, after, upto)                                                  pulled (per conversation)
#:   ("r", at, node, user, seq)                                                          read (per conversation)
Raw = tuple[Any, ...] | list[Any]
#: A record for the store: ("m", message id, raw step) or ("c", conv, raw step). A stored step also indexes
#: the message id by "sender:cmid".
Record = tuple[str, str, Raw]
_encode = msgspec.json.Encoder().encode
_decode_raw = msgspec.json.Decoder(list[Any]).decode


def expand(raw: Raw) -> list[Step]:
    kind, at, node = raw[0], raw[1], raw[2]
    if kind == "s":
        _, _, _, received_at, sender, cmid, conv, seq, duplicate, hot, users = raw
        return [
            Step(step="received", at=received_at, node=node, user=sender, cmid=cmid),
            Step(
                step="stored", at=at, node=node, conv=conv, seq=seq, mode="duplicate" if duplicate else None
            ),
            Step(step="published", at=at, node=node, users=list(users), mode="push-pull" if hot else "push"),
        ]
    if kind == "d":
        return [Step(step="delivered", at=at, node=node, users=list(raw[3]), terminals=list(raw[4]))]
    if kind == "p":
        return [Step(step="pulled", at=at, node=node, user=raw[3], after=raw[4], upto=raw[5])]
    return [Step(step="read", at=at, node=node, user=raw[3], seq=raw[4])]


def _key_of(raw: Raw) -> str | None:
    return f"{raw[4]}:{raw[5]}" if raw[0] == "s" else None


class TraceStore(abc.ABC):
    """Steps by message id and by conversation, and message ids by (sender, cmid), each kept ``ttl_s``."""

    def __init__(self, ttl_s: int) -> None:
        self.ttl_s = ttl_s

    @abc.abstractmethod
    async def append(self, records: Sequence[Record]) -> None: ...

    @abc.abstractmethod
    async def message_steps(self, message_id: str) -> list[Step]: ...

    @abc.abstractmethod
    async def conv_steps(self, conv: str) -> list[Step]: ...

    @abc.abstractmethod
    async def find(self, sender: int, cmid: str) -> str | None: ...

    async def close(self) -> None:  # noqa: B027  (the ring has nothing to close)
        pass


class MemoryTraceStore(TraceStore):
    """One node's ring: at most ``capacity`` messages, the oldest dropped first, none older than ``ttl_s``."""

    def __init__(
        self, ttl_s: int, capacity: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(ttl_s)
        self.capacity = capacity
        self.clock = clock
        self._messages: OrderedDict[str, tuple[float, list[Raw]]] = OrderedDict()
        self._convs: dict[str, deque[tuple[float, Raw]]] = {}
        self._keys: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def append(self, records: Sequence[Record]) -> None:
        now = self.clock()
        messages = self._messages
        for kind, key, raw in records:
            if kind == "m":
                entry = messages.get(key)
                if entry is None:
                    messages[key] = entry = (now, [])
                entry[1].append(raw)
                if raw[0] == "s":
                    self._keys[f"{raw[4]}:{raw[5]}"] = (now, key)
            else:
                self._convs.setdefault(key, deque(maxlen=CONV_STEPS)).append((now, raw))
        self._evict(now)

    def _evict(self, now: float) -> None:
        oldest = now - self.ttl_s
        for index in (self._messages, self._keys):
            while index and (len(index) > self.capacity or next(iter(index.values()))[0] < oldest):
                index.popitem(last=False)
        if len(self._convs) > self.capacity:
            for conv in [c for c, steps in self._convs.items() if not steps or steps[-1][0] < oldest]:
                del self._convs[conv]

    async def message_steps(self, message_id: str) -> list[Step]:
        entry = self._messages.get(message_id)
        if entry is None or entry[0] < self.clock() - self.ttl_s:
            return []
        return [step for raw in entry[1] for step in expand(raw)]

    async def conv_steps(self, conv: str) -> list[Step]:
        oldest = self.clock() - self.ttl_s
        return [step for at, raw in self._convs.get(conv, ()) if at >= oldest for step in expand(raw)]

    async def find(self, sender: int, cmid: str) -> str | None:
        entry = self._keys.get(f"{sender}:{cmid}")
        if entry is None or entry[0] < self.clock() - self.ttl_s:
            return None
        return entry[1]


class RedisTraceStore(TraceStore):
    """Lists ``trace:m:<id>`` and ``trace:c:<conv>`` of JSON steps and keys ``trace:k:<sender>:<cmid>``, each
    expiring ``ttl_s`` after its last write. One pipeline per flush, whatever the number of messages."""

    def __init__(self, client: aioredis.Redis, ttl_s: int, prefix: str = "trace") -> None:
        super().__init__(ttl_s)
        self.redis = client
        self.prefix = prefix

    async def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        touched: set[str] = set()
        async with self.redis.pipeline(transaction=False) as pipe:
            for kind, key, raw in records:
                name = f"{self.prefix}:{kind}:{key}"
                pipe.rpush(name, _encode(raw))
                if kind == "c":
                    pipe.ltrim(name, -CONV_STEPS, -1)
                elif raw[0] == "s":
                    pipe.set(f"{self.prefix}:k:{raw[4]}:{raw[5]}", key, ex=self.ttl_s)
                touched.add(name)
            for name in touched:
                pipe.expire(name, self.ttl_s)
            await pipe.execute()

    async def message_steps(self, message_id: str) -> list[Step]:
        found = await self.redis.lrange(f"{self.prefix}:m:{message_id}", 0, -1)
        return [step for item in found for step in expand(_decode_raw(item))]

    async def conv_steps(self, conv: str) -> list[Step]:
        found = await self.redis.lrange(f"{self.prefix}:c:{conv}", 0, -1)
        return [step for item in found for step in expand(_decode_raw(item))]

    async def find(self, sender: int, cmid: str) -> str | None:
        raw = await self.redis.get(f"{self.prefix}:k:{sender}:{cmid}")
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    async def close(self) -> None:
        await self.redis.aclose()


class Tracer:
    """The hooks of one node. Cheap when on (an append per step), nothing when ``sample`` is 0."""

    def __init__(self, store: TraceStore, node: str, sample: float = 1.0) -> None:
        self.store = store
        self.node = node
        self.on = sample > 0
        self._per_mille = round(max(0.0, min(1.0, sample)) * 1000)
        self._buffer: list[Record] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    def sampled(self, message_id: str) -> bool:
        return self._per_mille >= 1000 or (self.on and int(message_id[-3:]) < self._per_mille)

    # -- hooks ------------------------------------------------------------------------------------
    def stored(self, items: Sequence[NewMessage], results: Sequence[Stored | Rejected]) -> None:
        """After a batch is stored: received (when the node took it), stored (its seq), published (to whom)."""
        if not self.on:
            return
        now = now_ms()
        node = self.node
        per_mille = self._per_mille
        add = self._buffer.append
        for item, result in zip(items, results, strict=True):
            if result.__class__ is not Stored:
                continue
            m = result.message
            duplicate = result.duplicate
            # (The id's last three digits choose: a resend is traced under the stored message's id.)
            if per_mille < 1000 and (int(m.id[-3:]) if duplicate else item.id % 1000) >= per_mille:
                continue
            recipients = result.recipients or item.members
            raw = (
                "s",
                now,
                node,
                item.ts,
                m.sender,
                m.cmid,
                m.conv,
                m.seq,
                duplicate,
                result.hot,
                recipients,
            )
            add(("m", m.id, raw))
        self._kick()

    def delivered(self, events: Sequence[Event], by_user: Mapping[int, Iterable[Any]]) -> None:
        """A node writes pushes to its connections (on the node that stored them, or after routing)."""
        if not self.on:
            return
        now = now_ms()
        per_mille = self._per_mille
        start = len(_MSG_PREFIX)
        for event in events:
            payload = event.payload
            if not payload.startswith(_MSG_PREFIX):
                continue
            end = payload.index(b'"', start)
            if per_mille < 1000 and int(payload[end - 3 : end]) >= per_mille:
                continue
            users: list[int] = []
            terminals: list[str] = []
            for uid in event.recipients:
                for c in by_user.get(uid, ()):
                    if c.conn_id != event.exclude_conn:
                        terminals.append(f"{uid}/{c.terminal}")
                        if not users or users[-1] != uid:
                            users.append(uid)
            self._buffer.append(("m", payload[start:end].decode(), ("d", now, self.node, users, terminals)))
        self._kick()

    def pulled(self, user: int, conv: str, after: int, upto: int | None) -> None:
        """A member pulled ``after`` < seq <= ``upto`` (None: nothing was returned)."""
        if self.on and upto is not None:
            self._buffer.append(("c", conv, ("p", now_ms(), self.node, user, after, upto)))
            self._kick()

    def pulled_encoded(self, user: int, conv: str, after: int, found: Sequence[bytes]) -> None:
        """``pulled`` for messages already encoded (a hot group's cache): the range ends at the last seq."""
        if self.on and found:
            last = found[-1]
            at = last.find(b'"seq":') + 6
            end = at
            while end < len(last) and last[end : end + 1].isdigit():
                end += 1
            self.pulled(user, conv, after, int(last[at:end]) if end > at else None)

    def read(self, user: int, conv: str, seq: int) -> None:
        if self.on:
            self._buffer.append(("c", conv, ("r", now_ms(), self.node, user, seq)))
            self._kick()

    # -- buffer -----------------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._flusher is None:
            with contextlib.suppress(RuntimeError):  # no loop: a test calling hooks directly flushes itself
                self._wake = asyncio.Event()
                self._flusher = asyncio.get_running_loop().create_task(self._flush_forever())
        if len(self._buffer) >= FLUSH_AT and self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        records, self._buffer = self._buffer, []
        if records:
            try:
                await self.store.append(records)
            except Exception as exc:  # tracing is best effort: never a reason for a send to fail
                log.warning("dropping %d trace steps: %s", len(records), exc)

    async def _flush_forever(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            self._wake.clear()
            await self.flush()

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
            self._flusher = None
        await self.flush()
        await self.store.close()

    # -- reading ----------------------------------------------------------------------------------
    async def timeline(self, message_id: str | None = None, sender: int | None = None,
                       cmid: str | None = None) -> Timeline | None:  # fmt: skip
        """The message's steps in time order, with the pulls and reads of its conversation that cover it;
        None if it is not traced (never sent, not sampled, or older than the TTL)."""
        await self.flush()
        if message_id is None:
            if sender is None or cmid is None:
                return None
            message_id = await self.store.find(sender, cmid)
            if message_id is None:
                return None
        steps = await self.store.message_steps(message_id)
        if not steps:
            return None
        stored = next((s for s in steps if s.step == "stored"), None)
        received = next((s for s in steps if s.step == "received"), None)
        conv = stored.conv if stored else None
        seq = stored.seq if stored else None
        if conv is not None and seq is not None:
            readers: set[int] = set()
            for step in await self.store.conv_steps(conv):
                if step.step == "pulled" and (step.after or 0) < seq <= (step.upto or 0):
                    steps.append(step)
                elif step.step == "read" and (step.seq or 0) >= seq and step.user not in readers:
                    readers.add(step.user or 0)
                    steps.append(step)
        steps.sort(key=lambda s: s.at)
        return Timeline(
            message=message_id, conv=conv, seq=seq, sender=received.user if received else None, steps=steps
        )


class _Off(Tracer):
    def __init__(self) -> None:
        super().__init__(MemoryTraceStore(1, capacity=1), "", sample=0)


#: The tracer of code built without one (tests, tools): records nothing.
NO_TRACE: Tracer = _Off()


def build_tracer(config: Config, link: RedisLink | None = None) -> Tracer:
    """In Redis for a cluster (any node answers for every message), else a ring in this process.
    ``link``: the node's view of its Redis (engines/redis_link.py), so the tracer's commands count too."""
    store: TraceStore
    if config.redis and config.trace_sample > 0:
        from hubbub.engines.redis_link import RedisLink, connect

        store = RedisTraceStore(connect(config.redis, link or RedisLink(), timeout=2.0), config.trace_ttl_s)
    else:
        store = MemoryTraceStore(config.trace_ttl_s, config.trace_memory_messages)
    return Tracer(store, config.effective_node_id, config.trace_sample)
