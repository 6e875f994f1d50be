"""The cluster broker: registry, presence and node queues in Redis (docs/cluster.md).

Keys (``P`` is the key prefix; hash tags keep each key's slot fixed, so this runs on Redis Cluster too):

- ``P{u:<user>}`` — hash, terminal -> ``node\\tconn_id\\texpires_ms``: which connection holds each of the
  user's terminals. Each field carries its own expiry (renewed by its node every ``refresh_s``) and the whole
  hash expires too, so the entries of a node that died vanish by themselves.
- ``P{node:<id>}:alive`` — string with a TTL of ``alive_ttl_s``, renewed every ``alive_interval_s``. A node
  whose key is gone gets no new entries, and its queue is deleted by the first publisher that notices.
- ``P{node:<id>}:q`` — the node's queue, a Stream with one consumer group; capped at ``maxlen`` entries.

Delivery: ``publish`` looks up the recipients' holders (one pipelined ``HGETALL`` each), groups them by node,
hands the local share straight to the sink and writes **one** ``XADD`` per remote node per call, carrying
every event of the call for that node's recipients. Each node reads its own queue with ``XREADGROUP`` and
``XACK``s entries once they are handed to the sink; after a restart with the same node id, entries left
pending by the previous process are claimed with ``XAUTOCLAIM`` and delivered. As in the interface, a push is
at most once and best effort: what it misses, the client's sync fills.

Health: a probe PINGs Redis every ``HEALTH_INTERVAL_S`` (0.25 s) on its own connection, bounded by
``HEALTH_TIMEOUT_S`` (0.5 s), and any command of this node that fails to reach Redis marks it down at once
(engines/redis_link.py): ``ping()`` (readiness) answers from that state without a round trip, so ``/readyz``
turns 503 within 0.75 s of Redis going away and 200 again within 0.25 s of its return.

Recovery: the broker keeps a copy of its own registrations. When Redis comes back empty (its ``alive`` key
vanished under a ``SET XX``, or the group is gone: ``NOGROUP``), the node recreates its consumer group and
rewrites its registrations. Nothing durable lives here: seqs come from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hubbub.core.errors import Code, HubbubError
from hubbub.core.stats import Figure
from hubbub.engines.broker.base import Broker, Event, LocalSink, News, NodeLoad, Registered
from hubbub.engines.redis_link import (
    HEALTH_INTERVAL_S,
    HEALTH_TIMEOUT_S,
    LINK_ERRORS,
    RedisLink,
    watched_client,
)
from hubbub.protocol.close_codes import Close

log = logging.getLogger(__name__)

GROUP = "nodes"

# KEYS[1] user hash; ARGV: terminal, value, ttl seconds. Returns the hash as it was before.
_REGISTER = """
local before = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return before
"""

# KEYS[1] user hash; ARGV: terminal, conn id. Frees the slot only if conn id still holds it.
_UNREGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
local conn = string.match(cur, '^[^\\t]*\\t(.-)\\t%d+$')
if conn ~= ARGV[2] then return false end
local before = redis.call('HGETALL', KEYS[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return before
"""

# KEYS[1] user hash; ARGV: now ms, ttl s, then (terminal, conn id, value) triples. Renews this node's
# entries unless another live connection took the slot; returns the terminals that were taken.
_REFRESH = """
local now = tonumber(ARGV[1])
local lost = {}
for i = 3, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local mine = true
  if cur then
    local conn, exp = string.match(cur, '^[^\\t]*\\t(.-)\\t(%d+)$')
    mine = (conn == ARGV[i + 1]) or (tonumber(exp) < now)
  end
  if mine then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  else
    table.insert(lost, ARGV[i])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return lost
"""


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


class _WireNews(msgspec.Struct, array_like=True):
    conv: str
    seq: int
    mentions: list[int]
    mention_all: bool
    group_changed: bool
    signal: bool = True


class _Envelope(msgspec.Struct, array_like=True, omit_defaults=True):
    events: list[_WireEvent] = []
    closes: list[_WireClose] = []
    news: list[_WireNews] = []


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(_Envelope).decode
_decode_load = msgspec.msgpack.Decoder(NodeLoad).decode
#: A dead node's last load report is listed this long (ms), then forgotten.
_LOAD_KEPT_MS = 10 * 60 * 1000


class _Holder(msgspec.Struct, frozen=True):
    node: str
    conn_id: str
    expires_ms: int


class _SlotLocks:
    """One lock per (user, terminal) with registrations in flight on this node, dropped when idle.

    Two logins of one terminal on this node at once: the register script runs atomically in Redis, but the
    replies can come back in either order over a connection pool, and ``_local`` must end up naming the
    connection Redis kept (the other is closed 4409), or the survivor's entry is never renewed and expires.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[int, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _parse(value: bytes) -> _Holder | None:
    try:
        node, conn_id, expires = value.decode().split("\t")
        return _Holder(node, conn_id, int(expires))
    except ValueError:
        return None


def _pairs(flat: Sequence[bytes]) -> dict[str, bytes]:
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


def connect(url: str, timeout: float = 5.0, link: RedisLink | None = None) -> aioredis.Redis:
    """A client that retries a command a few times on a broken connection (a restarted Redis), briefly;
    with a ``link``, its commands and failures are reported there."""
    return watched_client(
        url,
        link or RedisLink(),
        socket_connect_timeout=2,
        socket_timeout=timeout,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def _now_ms() -> int:
    return int(time.time() * 1000)


class RedisBroker(Broker):
    def __init__(
        self,
        url: str,
        node_id: str,
        *,
        prefix: str = "hubbub:",
        refresh_s: float = 10.0,
        alive_interval_s: float = 2.0,
        alive_ttl_s: float = 6.0,
        maxlen: int = 10_000,
        client: aioredis.Redis | None = None,
        link: RedisLink | None = None,
    ) -> None:
        self.node_id = node_id
        self.prefix = prefix
        self.refresh_s = refresh_s
        #: A registry entry lives this long without renewal (its node died).
        self.entry_ttl_s = max(3 * refresh_s, 2 * alive_ttl_s)
        self.alive_interval_s = alive_interval_s
        self.alive_ttl_s = alive_ttl_s
        self.maxlen = maxlen
        #: Commands sent and whether Redis answers, shared with the node's other Redis clients.
        self.link = link or RedisLink()
        self.redis: aioredis.Redis = client or connect(url, link=self.link)
        # The health probe has its own connection without retries, so it is never queued behind a blocking
        # read or a retrying command, and a probe that does not answer in time is a failed probe.
        self._probe = watched_client(
            url,
            self.link,
            socket_connect_timeout=HEALTH_TIMEOUT_S,
            socket_timeout=HEALTH_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        #: Entries of this node's queue not yet read by it (``XINFO GROUPS`` lag), refreshed by the probe.
        self.lag: int | None = None
        self._lag_checked = 0.0
        self._register = self.redis.register_script(_REGISTER)
        self._unregister = self.redis.register_script(_UNREGISTER)
        self._refresh = self.redis.register_script(_REFRESH)
        self._sink: LocalSink | None = None
        #: This node's own registrations: user -> terminal -> conn id. Rewritten to Redis after it lost them.
        self._local: dict[int, dict[str, str]] = {}
        self._slot_locks = _SlotLocks()
        self._alive_cache: dict[str, tuple[bool, float]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._resync_lock = asyncio.Lock()
        self._closed = False
        #: Counters for tests and benchmarks.
        self.xadds = 0
        self.resyncs = 0

    # -- keys -------------------------------------------------------------------------------------
    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}{{u:{user_id}}}"

    def _alive_key(self, node: str) -> str:
        return f"{self.prefix}{{node:{node}}}:alive"

    def _queue_key(self, node: str) -> str:
        return f"{self.prefix}{{node:{node}}}:q"

    def _nodes_key(self) -> str:
        """The set of node ids that have run (dead ones are skipped by their liveness key): no KEYS scans."""
        return f"{self.prefix}{{nodes}}"

    def _load_key(self) -> str:
        """Hash: node id -> its last load report (``NodeLoad``, msgpack)."""
        return f"{self.prefix}{{nodes}}:load"

    def _value(self, conn_id: str, now_ms: int) -> str:
        return f"{self.node_id}\t{conn_id}\t{now_ms + int(self.entry_ttl_s * 1000)}"

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, sink: LocalSink) -> None:
        """Announce this node, create its queue group and take over what a previous run left pending."""
        self._sink = sink
        try:
            await self.redis.set(self._alive_key(self.node_id), "1", ex=int(self.alive_ttl_s))
            await self.redis.sadd(self._nodes_key(), self.node_id)
            await self._ensure_group()
            await self._reclaim()
        except RedisError as exc:
            raise SystemExit(f"cannot reach Redis for the broker: {exc}") from exc
        await self._update_lag()  # the metric has its series from the first scrape
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._consume(), name=f"broker-consume-{self.node_id}"),
            loop.create_task(self._keep_alive(), name=f"broker-alive-{self.node_id}"),
            loop.create_task(self._keep_registered(), name=f"broker-refresh-{self.node_id}"),
            loop.create_task(self._watch_health(), name=f"broker-health-{self.node_id}"),
        ]

    async def close(self) -> None:
        """Stop consuming and leave the cluster: free this node's slots, its liveness key and queue."""
        if self._closed and not self._tasks:
            return
        await self._halt()
        self._tasks = []
        with contextlib.suppress(RedisError, OSError):
            for user_id, slots in list(self._local.items()):
                for terminal, conn_id in list(slots.items()):
                    await self._unregister(keys=[self._user_key(user_id)], args=[terminal, conn_id])
            await self.redis.delete(self._alive_key(self.node_id), self._queue_key(self.node_id))
            await self.redis.srem(self._nodes_key(), self.node_id)
            await self.redis.hdel(self._load_key(), self.node_id)  # type: ignore[misc]
        self._local.clear()
        await self.redis.aclose()
        await self._probe.aclose()

    async def _halt(self) -> None:
        """Stop the background tasks (a node that stops renewing anything, as one that died would)."""
        self._closed = True
        # The consumer notices ``_closed`` within one blocking read (0.5 s). Cancelling a blocking XREADGROUP
        # instead can leave redis-py waiting on the half-read reply for good.
        for task in self._tasks[1:]:
            task.cancel()
        if self._tasks:
            with contextlib.suppress(RedisError, OSError):  # wake the blocked read now
                await self.redis.xadd(self._queue_key(self.node_id), {"w": b""}, maxlen=self.maxlen)
            _, pending = await asyncio.wait(self._tasks, timeout=3)
            for task in pending:
                task.cancel()

    # -- registry ---------------------------------------------------------------------------------
    async def lease_node_number(self) -> int | None:
        """Counting up modulo 1024: distinct for any 1,024 nodes started in a row."""
        return int(await self.redis.incr(f"{self.prefix}{{nodes}}:numbers")) % 1024

    async def ping(self) -> None:
        """From the link's state, no round trip: the health probe and every failing command keep it current."""
        if not self.link.up:
            raise HubbubError(Code.UNAVAILABLE, "Redis is unavailable")

    async def _watch_health(self) -> None:
        """PING every ``HEALTH_INTERVAL_S``; the only place that marks Redis up again after a failure."""
        while not self._closed:
            started = time.monotonic()
            try:
                async with asyncio.timeout(HEALTH_TIMEOUT_S):
                    await self._probe.ping()
            except asyncio.CancelledError:
                raise
            except (*LINK_ERRORS, RedisError, TimeoutError) as exc:
                self.link.failed(exc)
            else:
                self.link.answered()
                if started - self._lag_checked >= 1.0:
                    self._lag_checked = started
                    await self._update_lag()
            await asyncio.sleep(max(0.0, HEALTH_INTERVAL_S - (time.monotonic() - started)))

    async def _update_lag(self) -> None:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                groups: Any = await self._probe.xinfo_groups(self._queue_key(self.node_id))
        except (RedisError, OSError, TimeoutError):
            return  # no queue yet (Redis just restarted): the resync recreates it
        for group in groups:
            name = group.get("name")
            if name in (GROUP, GROUP.encode()):
                lag = group.get("lag")
                self.lag = int(lag) if lag is not None else None

    def figures(self) -> list[Figure]:
        if self.lag is None:  # unknown (Redis < 7 does not report it): no series rather than a false 0
            return []
        return [Figure("node_stream_lag", "gauge", "Entries waiting in this node's queue.", self.lag)]

    async def register(self, user_id: int, terminal: str, conn_id: str) -> Registered:
        now = _now_ms()
        async with self._slot_locks.hold((user_id, terminal)):
            try:
                raw = await self._register(
                    keys=[self._user_key(user_id)],
                    args=[terminal, self._value(conn_id, now), int(self.entry_ttl_s)],
                )
            except RedisError as exc:
                raise HubbubError(Code.UNAVAILABLE, "the connection registry is unavailable") from exc
            self._local.setdefault(user_id, {})[terminal] = conn_id
        before_all = {t: _parse(v) for t, v in _pairs(raw).items()}
        live = await self._live_terminals(before_all, now)
        previous = before_all.get(terminal)
        if previous is not None and previous.conn_id != conn_id and terminal in live:
            await self._close_remote(
                previous.node,
                _WireClose(user_id, int(Close.REPLACED), "replaced by a newer login", previous.conn_id, None),
            )
        before = tuple(sorted(live))
        return Registered(before=before, after=tuple(sorted({*live, terminal})))

    async def unregister(self, user_id: int, terminal: str, conn_id: str) -> Registered | None:
        slots = self._local.get(user_id)
        if slots is not None and slots.get(terminal) == conn_id:
            del slots[terminal]
            if not slots:
                del self._local[user_id]
        try:
            raw = await self._unregister(keys=[self._user_key(user_id)], args=[terminal, conn_id])
        except RedisError:
            log.warning("registry unavailable; %s's entry for %s will expire", conn_id, terminal)
            return None
        if raw is None:
            return None
        before_all = {t: _parse(v) for t, v in _pairs(raw).items()}
        live = await self._live_terminals(before_all, _now_ms())
        live.add(terminal)
        return Registered(before=tuple(sorted(live)), after=tuple(sorted(live - {terminal})))

    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not user_ids:
            return {}
        try:
            holders = await self._holders(user_ids)
        except RedisError as exc:
            log.warning("presence from this node only (Redis: %s)", exc)
            return {u: tuple(sorted(self._local[u])) for u in user_ids if self._local.get(u)}
        now = _now_ms()
        result: dict[int, tuple[str, ...]] = {}
        for user_id, slots in holders.items():
            live = await self._live_terminals(slots, now)
            if live:
                result[user_id] = tuple(sorted(live))
        return result

    async def _holders(self, user_ids: Sequence[int]) -> dict[int, dict[str, _Holder | None]]:
        """Every registry entry of the given users, in one round trip."""
        unique = list(dict.fromkeys(user_ids))
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in unique:
                pipe.hgetall(self._user_key(user_id))
            replies = await pipe.execute()
        return {
            user_id: {k.decode(): _parse(v) for k, v in reply.items()}
            for user_id, reply in zip(unique, replies, strict=True)
            if reply
        }

    async def _live_terminals(self, slots: dict[str, _Holder | None], now_ms: int) -> set[str]:
        live = set()
        for terminal, holder in slots.items():
            if holder is not None and holder.expires_ms > now_ms and await self._node_alive(holder.node):
                live.add(terminal)
        return live

    async def _node_alive(self, node: str) -> bool:
        """Is the node's liveness key there? Answers are cached for a second, both ways."""
        if node == self.node_id:
            return True
        now = time.monotonic()
        cached = self._alive_cache.get(node)
        if cached is not None and cached[1] > now:
            return cached[0]
        alive = bool(await self.redis.exists(self._alive_key(node)))
        self._alive_cache[node] = (alive, now + 1.0)
        if not alive:
            await self.redis.delete(self._queue_key(node))
            await self.redis.srem(self._nodes_key(), node)
        return alive

    # -- delivery ---------------------------------------------------------------------------------
    async def publish(self, events: Sequence[Event]) -> None:
        """Without a sink (a CLI publishing as no node), only other nodes' connections are reached."""
        if not events:
            return
        recipients = list(dict.fromkeys(uid for event in events for uid in event.recipients))
        try:
            holders = await self._holders(recipients)
            now = _now_ms()
            nodes_of: dict[int, set[str]] = {}
            for user_id, slots in holders.items():
                nodes = {h.node for h in slots.values() if h is not None and h.expires_ms > now}
                if nodes:
                    nodes_of[user_id] = nodes
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

    async def announce(self, items: Sequence[News]) -> None:
        if not items or self._sink is None:
            return
        self._sink.news(items)
        try:
            members: set[Any] = await self.redis.smembers(self._nodes_key())  # type: ignore[misc]
            nodes = {n.decode() if isinstance(n, bytes) else str(n) for n in members}
            nodes.discard(self.node_id)
            wire = [
                _WireNews(n.conv, n.seq, list(n.mentions), n.mention_all, n.group_changed, n.signal)
                for n in items
            ]
            await self._send({node: _Envelope(news=wire) for node in nodes})
        except RedisError as exc:
            log.warning("announcing hot-group news failed (%s); members catch up at the next signal", exc)

    async def disconnect(
        self, user_id: int, code: Close, reason: str, *, conn_id: str | None = None, sid: str | None = None
    ) -> None:
        if self._sink is not None:
            self._sink.disconnect(user_id, code, reason, conn_id, sid)
        try:
            holders = (await self._holders([user_id])).get(user_id, {})
        except RedisError as exc:
            raise HubbubError(Code.UNAVAILABLE, "the connection registry is unavailable") from exc
        nodes = {
            h.node for h in holders.values() if h is not None and (conn_id is None or h.conn_id == conn_id)
        }
        nodes.discard(self.node_id)
        command = _WireClose(user_id, int(code), reason, conn_id, sid)
        await self._send({node: _Envelope(closes=[command]) for node in nodes})

    # -- node list ---------------------------------------------------------------------------------
    async def report_load(self, load: NodeLoad) -> None:
        try:
            await self.redis.hset(self._load_key(), self.node_id, _encode(load))  # type: ignore[misc]
        except RedisError as exc:
            log.warning("reporting this node's load failed: %s", exc)

    async def nodes(self) -> list[NodeLoad]:
        try:
            raw: dict[Any, Any] = await self.redis.hgetall(self._load_key())  # type: ignore[misc]
            members: set[Any] = await self.redis.smembers(self._nodes_key())  # type: ignore[misc]
            reports: dict[str, NodeLoad] = {}
            for key, value in raw.items():
                with contextlib.suppress(msgspec.DecodeError):
                    reports[key.decode()] = _decode_load(value)
            for member in members:
                node = member.decode() if isinstance(member, bytes) else str(member)
                reports.setdefault(node, NodeLoad(node=node))
            names = sorted(reports)
            async with self.redis.pipeline(transaction=False) as pipe:
                for node in names:
                    pipe.exists(self._alive_key(node))
                alive = await pipe.execute()
        except RedisError as exc:
            raise HubbubError(Code.UNAVAILABLE, "Redis is unavailable") from exc
        now = _now_ms()
        result = []
        for node, is_alive in zip(names, alive, strict=True):
            load = reports[node]
            load.alive = bool(is_alive)
            if not load.alive and now - load.reported_at > _LOAD_KEPT_MS:
                with contextlib.suppress(RedisError):
                    await self.redis.hdel(self._load_key(), node)  # type: ignore[misc]
                continue
            result.append(load)
        return result

    async def _close_remote(self, node: str, command: _WireClose) -> None:
        if node == self.node_id:
            if self._sink is not None:
                self._sink.disconnect(
                    command.user_id, Close(command.code), command.reason, command.conn_id, command.sid
                )
            return
        await self._send({node: _Envelope(closes=[command])})

    async def _send(self, envelopes: dict[str, _Envelope]) -> None:
        """One XADD per live target node, all in one round trip."""
        targets = [node for node in envelopes if await self._node_alive(node)]
        if not targets:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for node in targets:
                pipe.xadd(
                    self._queue_key(node),
                    {"d": _encode(envelopes[node])},
                    maxlen=self.maxlen,
                    approximate=True,
                )
            await pipe.execute()
        self.xadds += len(targets)

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
        if envelope.news:
            self._sink.news(
                [
                    News(n.conv, n.seq, tuple(n.mentions), n.mention_all, n.group_changed, n.signal)
                    for n in envelope.news
                ]
            )

    # -- the node's queue -------------------------------------------------------------------------
    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self._queue_key(self.node_id), GROUP, id="$", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _reclaim(self) -> None:
        """Deliver what a previous process with this node id read but never acknowledged."""
        key = self._queue_key(self.node_id)
        start = "0-0"
        while True:
            reply: Any = await self.redis.xautoclaim(
                key, GROUP, self.node_id, min_idle_time=0, start_id=start, count=256
            )
            start = reply[0]
            ids = self._handle_entries(reply[1])
            if ids:
                await self.redis.xack(key, GROUP, *ids)
            if start in (b"0-0", "0-0"):
                return

    async def _consume(self) -> None:
        key = self._queue_key(self.node_id)
        backoff = 0.1
        while not self._closed:
            try:
                reply: Any = await self.redis.xreadgroup(
                    GROUP, self.node_id, {key: ">"}, count=256, block=500
                )
                backoff = 0.1
                for _, entries in reply or ():
                    ids = self._handle_entries(entries)
                    if ids:
                        await self.redis.xack(key, GROUP, *ids)
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    await self._resync("queue group missing")
                else:
                    log.exception("reading the node queue failed")
                    await asyncio.sleep(backoff)
            except (RedisError, OSError) as exc:
                log.warning("node queue unreachable: %s", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
            except Exception:
                log.exception("delivering a queue entry failed")

    async def _keep_alive(self) -> None:
        """Renew the liveness key; finding it gone means Redis lost our state (restarted, or we stalled)."""
        key = self._alive_key(self.node_id)
        while True:
            await asyncio.sleep(self.alive_interval_s)
            try:
                if not await self.redis.set(key, "1", ex=int(self.alive_ttl_s), xx=True):
                    await self._resync("liveness key missing")
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("liveness renewal failed: %s", exc)
            except Exception:
                log.exception("liveness renewal failed")

    async def _keep_registered(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("registry renewal failed: %s", exc)
            except Exception:
                log.exception("registry renewal failed")

    async def refresh(self) -> None:
        """Renew every local registration (the broker calls this itself every ``refresh_s``).

        A slot that another live connection took meanwhile (a replacement whose close was lost) is not
        overwritten: the local connection is closed as replaced.
        """
        if not self._local:
            return
        now = _now_ms()
        users = list(self._local.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, slots in users:
                args: list[Any] = [now, int(self.entry_ttl_s)]
                for terminal, conn_id in slots.items():
                    args += [terminal, conn_id, self._value(conn_id, now)]
                await self._refresh(keys=[self._user_key(user_id)], args=args, client=pipe)
            replies = await pipe.execute()
        for (user_id, slots), lost in zip(users, replies, strict=True):
            for raw in lost or ():
                terminal = raw.decode()
                if terminal in slots and self._sink is not None:
                    lost_conn = slots.pop(terminal)
                    self._sink.disconnect(
                        user_id, Close.REPLACED, "replaced by a newer login", lost_conn, None
                    )
            if not slots:
                self._local.pop(user_id, None)

    async def _resync(self, why: str) -> None:
        """Rebuild this node's state in a Redis that lost it: liveness, queue group, registrations."""
        if self._resync_lock.locked():
            return
        async with self._resync_lock:
            log.warning("Redis lost this node's state (%s): re-registering", why)
            self.resyncs += 1
            self._alive_cache.clear()
            await self.redis.set(self._alive_key(self.node_id), "1", ex=int(self.alive_ttl_s))
            await self.redis.sadd(self._nodes_key(), self.node_id)
            await self._ensure_group()
            await self.refresh()
