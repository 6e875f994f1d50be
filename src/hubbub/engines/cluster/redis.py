"""Cluster membership in Redis (docs/cluster.md; keys in engines/redis_keys.py).

- Liveness: ``P{node:<id>}:alive``, a string with a TTL of ``alive_ttl_s``, renewed every
  ``alive_interval_s`` with ``SET XX``: the node's lease. Its value is the process's incarnation (random per
  start), so what a previous process with the same node id left (registry entries) is told apart from what
  this one holds. Finding it gone means Redis lost this node's state (it restarted
  empty, or the node stalled past the TTL): the node recovers (``on_recover`` hooks).
- Node list: the set ``P{nodes}`` (no ``KEYS`` scans), load reports in the hash ``P{nodes}:load``.
- Node numbers: ``INCR P{nodes}:numbers`` modulo 1024.

Health: a probe PINGs Redis every ``HEALTH_INTERVAL_S`` (0.25 s) on its own connection, bounded by
``HEALTH_TIMEOUT_S`` (0.5 s), and any command of this node that fails to reach Redis marks it down at once
(engines/redis_link.py): ``ping()`` (readiness) answers from that state without a round trip, so ``/readyz``
turns 503 within 0.75 s of Redis going away and 200 again within 0.25 s of its return. Once a second, while
Redis answers, the probe also reads the lag of this node's queue (``XINFO GROUPS``), the
``hubbub_node_stream_lag`` gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError
from hubbub.core.periodic import Periodic
from hubbub.core.stats import Figure
from hubbub.engines.cluster.base import Cluster, NodeLoad, RecoverHook
from hubbub.engines.redis_keys import QUEUE_GROUP, Keys
from hubbub.engines.redis_link import (
    HEALTH_INTERVAL_S,
    HEALTH_TIMEOUT_S,
    LINK_ERRORS,
    RedisLink,
    watched_client,
)

log = logging.getLogger(__name__)

_encode_load = msgspec.msgpack.Encoder().encode
_decode_load = msgspec.msgpack.Decoder(NodeLoad).decode
#: A dead node's last load report is listed this long (ms), then forgotten.
_LOAD_KEPT_MS = 10 * 60 * 1000
#: How long an answer of ``is_alive`` about another node is reused (s), both ways.
_ALIVE_CACHE_S = 1.0


class RedisCluster(Cluster):
    def __init__(
        self,
        client: aioredis.Redis,
        node_id: str,
        *,
        url: str,
        link: RedisLink,
        keys: Keys | None = None,
        alive_interval_s: float = 2.0,
        alive_ttl_s: float = 6.0,
    ) -> None:
        """``client`` is shared with the node's other cluster engines (and closed by whoever built it);
        ``url`` is for the health probe's own connection."""
        self.node_id = node_id
        self.redis = client
        self.keys = keys or Keys()
        self.link = link
        self.alive_interval_s = alive_interval_s
        self.alive_ttl_s = alive_ttl_s
        self.incarnation = secrets.token_hex(6)
        # The health probe has its own connection without retries, so it is never queued behind a blocking
        # read or a retrying command, and a probe that does not answer in time is a failed probe.
        self._probe = watched_client(
            url,
            link,
            socket_connect_timeout=HEALTH_TIMEOUT_S,
            socket_timeout=HEALTH_TIMEOUT_S,
            retry=Retry(NoBackoff(), 0),
        )
        #: Entries of this node's queue not yet read by it (``XINFO GROUPS`` lag), refreshed by the probe.
        self.lag: int | None = None
        self._lag_checked = 0.0
        self._alive_cache: dict[str, tuple[str | None, float]] = {}
        self._hooks: list[RecoverHook] = []
        self._recover_lock = asyncio.Lock()
        #: Times this node found Redis had lost its state, for tests.
        self.resyncs = 0
        self._loops = [
            Periodic(
                f"cluster-alive-{node_id}",
                alive_interval_s,
                self._renew,
                jitter=0.1,
                quiet=(RedisError, OSError),
            ),
            Periodic(f"cluster-health-{node_id}", HEALTH_INTERVAL_S, self._probe_once),
        ]

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        try:
            await self._announce()
        except RedisError as exc:
            raise HubbubError(Code.UNAVAILABLE, f"cannot reach Redis: {exc}") from exc
        await self._update_lag()  # the metric has its series from the first scrape
        for loop in self._loops:
            loop.start()

    async def halt(self) -> None:
        """Stop renewing and probing, as a node that died would (close calls it; tests call it alone)."""
        for loop in self._loops:
            await loop.stop()

    async def close(self) -> None:
        await self.halt()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(self.keys.alive(self.node_id))
            await self.redis.srem(self.keys.nodes(), self.node_id)
            await self.redis.hdel(self.keys.load(), self.node_id)
        await self._probe.aclose()

    async def _announce(self) -> None:
        await self.redis.set(self.keys.alive(self.node_id), self.incarnation, ex=int(self.alive_ttl_s))
        await self.redis.sadd(self.keys.nodes(), self.node_id)

    # -- liveness ---------------------------------------------------------------------------------
    async def is_alive(self, node: str) -> bool:
        return await self.incarnation_of(node) is not None

    async def incarnation_of(self, node: str) -> str | None:
        """The value of the node's liveness key, None if it is gone. Cached for a second; a node found dead
        loses its queue and its place in the node set."""
        if node == self.node_id:
            return self.incarnation
        now = time.monotonic()
        cached = self._alive_cache.get(node)
        if cached is not None and cached[1] > now:
            return cached[0]
        raw = await self.redis.get(self.keys.alive(node))
        incarnation = raw.decode() if isinstance(raw, bytes) else raw
        self._alive_cache[node] = (incarnation, now + _ALIVE_CACHE_S)
        if incarnation is None:
            await self.redis.delete(self.keys.queue(node))
            await self.redis.srem(self.keys.nodes(), node)
        return incarnation

    async def live_nodes(self) -> list[str]:
        members: set[Any] = await self.redis.smembers(self.keys.nodes())
        names = {m.decode() if isinstance(m, bytes) else str(m) for m in members} | {self.node_id}
        return sorted([n for n in names if await self.is_alive(n)])

    async def _renew(self) -> None:
        """Renew the liveness key; finding it gone means Redis lost our state (restarted, or we stalled)."""
        alive = self.keys.alive(self.node_id)
        if not await self.redis.set(alive, self.incarnation, ex=int(self.alive_ttl_s), xx=True):
            await self.recover("liveness key missing")

    def on_recover(self, hook: RecoverHook) -> None:
        self._hooks.append(hook)

    async def recover(self, why: str) -> None:
        """Rebuild this node's state in a Redis that lost it: liveness, then each engine's hook. Engines call
        this too when they find their own state gone (the routing engine on ``NOGROUP``)."""
        if self._recover_lock.locked():
            return
        async with self._recover_lock:
            log.warning("Redis lost this node's state (%s): re-registering", why)
            self.resyncs += 1
            self._alive_cache.clear()
            await self._announce()
            for hook in self._hooks:
                await hook()

    # -- node list, numbers ---------------------------------------------------------------------------
    async def lease_node_number(self) -> int | None:
        """Counting up modulo 1024: distinct for any 1,024 nodes started in a row."""
        return int(await self.redis.incr(self.keys.numbers())) % 1024

    async def report_load(self, load: NodeLoad) -> None:
        try:
            await self.redis.hset(self.keys.load(), self.node_id, _encode_load(load))
        except RedisError as exc:
            log.warning("reporting this node's load failed: %s", exc)

    async def nodes(self) -> list[NodeLoad]:
        try:
            raw: dict[Any, Any] = await self.redis.hgetall(self.keys.load())
            members: set[Any] = await self.redis.smembers(self.keys.nodes())
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
                    pipe.exists(self.keys.alive(node))
                alive = await pipe.execute()
        except RedisError as exc:
            raise HubbubError(Code.UNAVAILABLE, "Redis is unavailable") from exc
        now = now_ms()
        result = []
        for node, is_alive in zip(names, alive, strict=True):
            load = reports[node]
            load.alive = bool(is_alive)
            if not load.alive and now - load.reported_at > _LOAD_KEPT_MS:
                with contextlib.suppress(RedisError):
                    await self.redis.hdel(self.keys.load(), node)
                continue
            result.append(load)
        return result

    # -- health -------------------------------------------------------------------------------------
    async def ping(self) -> None:
        """From the link's state, no round trip: the health probe and every failing command keep it current."""
        if not self.link.up:
            raise HubbubError(Code.UNAVAILABLE, "Redis is unavailable")

    async def _probe_once(self) -> None:
        """PING, bounded; the only place that marks Redis up again after a failure."""
        started = time.monotonic()
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                await self._probe.ping()
        except (*LINK_ERRORS, RedisError, TimeoutError) as exc:
            self.link.failed(exc)
            return
        self.link.answered()
        if started - self._lag_checked >= 1.0:
            self._lag_checked = started
            await self._update_lag()

    async def _update_lag(self) -> None:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT_S):
                groups: Any = await self._probe.xinfo_groups(self.keys.queue(self.node_id))
        except (RedisError, OSError, TimeoutError):
            return  # no queue yet (Redis just restarted): the recovery recreates it
        for group in groups:
            name = group.get("name")
            if name in (QUEUE_GROUP, QUEUE_GROUP.encode()):
                lag = group.get("lag")
                self.lag = int(lag) if lag is not None else None

    def figures(self) -> Iterator[Figure]:
        if self.lag is None:  # unknown (Redis < 7 does not report it): no series rather than a false 0
            return
        yield Figure("node_stream_lag", "gauge", "Entries waiting in this node's queue.", self.lag)
