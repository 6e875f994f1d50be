"""Routing between the nodes of a cluster through a Redis Stream per node (docs/cluster.md; keys in
engines/redis_keys.py).

``P{node:<id>}:q`` is the node's queue: a Stream with one consumer group, capped at ``maxlen`` entries.

Delivery: ``publish`` asks the registry where the recipients are (one pipelined ``HGETALL`` for all), groups
them by node, hands the local share straight to the sink and writes **one** ``XADD`` per remote node per
call, carrying every event of the call for that node's recipients. Closes and broadcasts travel the same way
(one envelope type). Each node reads its own queue with ``XREADGROUP`` and ``XACK``s entries once they are
handed to the sink (the ``XACK`` pipelined with the next read: one round trip per read); after a restart
with the same node id, entries left pending by the previous process are claimed with ``XAUTOCLAIM`` and
delivered. A node the cluster finds dead gets no queue write. As in the interface, a push is at most once and best effort: what it misses, the client's sync fills.

Recovery: a read that finds the consumer group gone (``NOGROUP``: Redis restarted empty) asks the cluster to
recover; this engine's hook recreates the group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.cluster.base import Cluster
from hubbub.engines.redis_keys import QUEUE_GROUP, Keys
from hubbub.engines.registry.base import Registry
from hubbub.engines.routing.base import Event, LocalSink, Routing
from hubbub.protocol.close_codes import Close

log = logging.getLogger(__name__)


class _WireEvent(msgspec.Struct, array_like=True):
    recipients: list[int]
    payload: bytes
    exclude_conn: str | None
    #: Last with a default: an entry from a node without it still decodes.
    only_conn: str | None = None


class _WireClose(msgspec.Struct, array_like=True):
    user_id: int
    code: int
    reason: str
    conn_id: str | None
    sid: str | None


class _Envelope(msgspec.Struct, array_like=True, omit_defaults=True):
    events: list[_WireEvent] = []
    closes: list[_WireClose] = []
    broadcasts: list[bytes] = []


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Envelope).decode


class RedisRouting(Routing):
    def __init__(
        self,
        client: aioredis.Redis,
        node_id: str,
        registry: Registry,
        cluster: Cluster,
        *,
        keys: Keys | None = None,
        maxlen: int = 10_000,
    ) -> None:
        """``registry`` says where users are; ``cluster``, which nodes are alive (and recovers)."""
        self.node_id = node_id
        self.redis = client
        self.registry = registry
        self.cluster = cluster
        self.keys = keys or Keys()
        self.maxlen = maxlen
        self._sink: LocalSink | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._closed = False
        #: Queue writes, for tests and benchmarks.
        self.xadds = 0

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, sink: LocalSink) -> None:
        """Create this node's queue group and take over what a previous run left pending, then consume."""
        self._sink = sink
        try:
            await self._ensure_group()
            await self._reclaim()
        except RedisError as exc:
            raise HubbubError(Code.UNAVAILABLE, f"cannot reach Redis: {exc}") from exc
        self.cluster.on_recover(self._ensure_group)
        self._consumer = asyncio.get_running_loop().create_task(
            self._consume(), name=f"routing-consume-{self.node_id}"
        )

    async def halt(self) -> None:
        """Stop consuming, as a node that died would (close calls it; tests call it alone)."""
        self._closed = True
        task, self._consumer = self._consumer, None
        if task is None:
            return
        # The consumer notices ``_closed`` within one blocking read (0.5 s). Cancelling a blocking XREADGROUP
        # instead can leave redis-py waiting on the half-read reply for good.
        with contextlib.suppress(RedisError, OSError):  # wake the blocked read now
            await self.redis.xadd(self.keys.queue(self.node_id), {"w": b""}, maxlen=self.maxlen)
        _, pending = await asyncio.wait([task], timeout=3)
        for t in pending:
            t.cancel()

    async def close(self) -> None:
        """Stop consuming and drop this node's queue."""
        await self.halt()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.keys.queue(self.node_id))

    # -- sending ----------------------------------------------------------------------------------
    async def publish(self, events: Sequence[Event]) -> None:
        """Without a sink (a CLI publishing as no node), only other nodes' connections are reached."""
        if not events:
            return
        recipients = list(dict.fromkeys(uid for event in events for uid in event.recipients))
        try:
            nodes_of = await self.registry.locate(recipients)
            per_node: dict[str, list[_WireEvent]] = {}
            for event in events:
                split: dict[str, list[int]] = {}
                for uid in event.recipients:
                    for node in nodes_of.get(uid, ()):
                        split.setdefault(node, []).append(uid)
                for node, uids in split.items():
                    per_node.setdefault(node, []).append(
                        _WireEvent(uids, event.payload, event.exclude_conn, event.only_conn)
                    )
            local = per_node.pop(self.node_id, None)
            if local is not None and self._sink is not None:
                self._sink.deliver(
                    [Event(e.recipients, e.payload, e.exclude_conn, e.only_conn) for e in local]
                )
            await self._send({node: _Envelope(events=evs) for node, evs in per_node.items()})
        except RedisError as exc:
            # Pushes are best effort (the client's sync fills any gap): reach at least this node's sockets.
            log.warning("publish through Redis failed (%s); delivering locally only", exc)
            if self._sink is not None:
                self._sink.deliver(events)

    async def broadcast(self, payload: bytes) -> None:
        if self._sink is not None:
            self._sink.broadcast(payload)
        try:
            nodes = set(await self.cluster.live_nodes())
            nodes.discard(self.node_id)
            await self._send({node: _Envelope(broadcasts=[payload]) for node in nodes})
        except RedisError as exc:
            log.warning("a node broadcast failed (%s); other nodes miss it", exc)

    async def disconnect(
        self,
        user_id: int,
        code: Close,
        reason: str,
        *,
        conn_id: str | None = None,
        sid: str | None = None,
        node: str | None = None,
    ) -> None:
        command = _WireClose(user_id, int(code), reason, conn_id, sid)
        if node is not None:  # a takeover: the registry already names the successor
            if node == self.node_id:
                if self._sink is not None:
                    self._sink.disconnect(user_id, code, reason, conn_id, sid)
            else:
                await self._send({node: _Envelope(closes=[command])})
            return
        if self._sink is not None:
            self._sink.disconnect(user_id, code, reason, conn_id, sid)
        try:
            nodes = (await self.registry.locate([user_id], conn_id=conn_id, stale=True)).get(user_id, set())
        except RedisError as exc:
            raise HubbubError(Code.UNAVAILABLE, "the connection registry is unavailable") from exc
        nodes.discard(self.node_id)
        await self._send({n: _Envelope(closes=[command]) for n in nodes})

    async def _send(self, envelopes: dict[str, _Envelope]) -> None:
        """One XADD per live target node, all in one round trip."""
        targets = [node for node in envelopes if await self.cluster.is_alive(node)]
        if not targets:
            return
        if len(targets) == 1:  # the usual case (two nodes): one command costs less than a pipeline of one
            node = targets[0]
            await self.redis.xadd(
                self.keys.queue(node), {"d": _encode(envelopes[node])}, maxlen=self.maxlen, approximate=True
            )
            self.xadds += 1
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in targets:
                pipe.xadd(
                    self.keys.queue(node),
                    {"d": _encode(envelopes[node])},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            await pipe.execute()
        self.xadds += len(targets)

    # -- receiving --------------------------------------------------------------------------------
    def _handle_entries(self, entries: Any) -> list[Any]:
        """Hand queue entries to the sink; their ids, to acknowledge."""
        ids = []
        for entry_id, fields in entries:
            if fields and b"d" in fields:
                self._handle(fields[b"d"])
            ids.append(entry_id)
        return ids

    def _handle(self, data: bytes) -> None:
        assert self._sink is not None
        try:
            envelope = _decode(data)
        except msgspec.DecodeError:
            log.error("dropping an undecodable queue entry")
            return
        if envelope.events:
            self._sink.deliver(
                [Event(e.recipients, e.payload, e.exclude_conn, e.only_conn) for e in envelope.events]
            )
        for c in envelope.closes:
            self._sink.disconnect(c.user_id, Close(c.code), c.reason, c.conn_id, c.sid)
        for payload in envelope.broadcasts:
            self._sink.broadcast(payload)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.queue(self.node_id), QUEUE_GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _reclaim(self) -> None:
        """Deliver what a previous process with this node id read but never acknowledged."""
        key = self.keys.queue(self.node_id)
        start = "0-0"
        while True:
            reply: Any = await self.redis.xautoclaim(
                key, QUEUE_GROUP, self.node_id, min_idle_time=0, start_id=start, count=256
            )
            start = reply[0]
            ids = self._handle_entries(reply[1])
            if ids:
                await self.redis.xack(key, QUEUE_GROUP, *ids)
            if start in (b"0-0", "0-0"):
                return

    async def _read(self, key: str, ack: list[Any]) -> Any:
        """The next entries of this node's queue; the ``XACK`` of those just handled rides in the same
        round trip (sent at once, as before, only its reply is read with the entries')."""
        if not ack:
            return await self.redis.xreadgroup(QUEUE_GROUP, self.node_id, {key: ">"}, count=256, block=500)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(key, QUEUE_GROUP, *ack)
            pipe.xreadgroup(QUEUE_GROUP, self.node_id, {key: ">"}, count=256, block=500)
            return (await pipe.execute())[1]

    async def _consume(self) -> None:
        """Read this node's queue until ``halt`` (a consumer, not a periodic task: it blocks on the queue)."""
        key = self.keys.queue(self.node_id)
        backoff = 0.1
        handled: list[Any] = []  # entries handed to the sink, acknowledged with the next read
        while not self._closed:
            try:
                ack, handled = handled, []
                reply: Any = await self._read(key, ack)
                backoff = 0.1
                for _, entries in reply or ():
                    handled += self._handle_entries(entries)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self.cluster.recover("queue group missing")
                else:
                    log.exception("reading the node queue failed")
                    await asyncio.sleep(backoff)
            except (RedisError, OSError) as exc:
                log.warning("node queue unreachable: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                log.exception("delivering a queue entry failed")
        if handled:  # stopping: what was delivered is not delivered again by the next process
            with contextlib.suppress(RedisError, OSError):
                await self.redis.xack(key, QUEUE_GROUP, *handled)
