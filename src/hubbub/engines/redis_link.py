"""What a node knows of its Redis: how many commands it sent, and whether Redis answers (docs/cluster.md,
"Failure behaviour"; docs/operations.md, "Metrics").

Every Redis client a node builds (the cluster engines, hot-group state, rate limits, calls, the tracer) shares one
``RedisLink``. Its clients' connections report to it where commands are packed for the wire and where
sockets fail, so:

- ``commands`` counts every command sent, one per command carried by a pipeline or a script call, retries
  included (``hubbub_redis_commands_total``);
- a connection failure or timeout on *any* command of any engine marks Redis down at once, instead of
  whenever the next readiness probe happens to ask. Only the cluster engine's health probe (a ``PING`` every
  ``HEALTH_INTERVAL_S``, bounded by ``HEALTH_TIMEOUT_S``) marks it up again, so one lucky command in the
  middle of an outage does not flap readiness.

A URL with the scheme ``redis+cluster://host:port`` (any node of the cluster) gives a Redis Cluster client
with the same options; the engines use only what both clients offer (single-slot scripts and commands, and
pipelines, which the cluster client splits per slot), and their keys are hash-tagged (engines/redis_keys.py).

Hence the detection bound: Redis refusing connections is noticed by the next command or probe (at most
``HEALTH_INTERVAL_S`` later); Redis hanging, at most ``HEALTH_INTERVAL_S + HEALTH_TIMEOUT_S`` (0.75 s) later.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import Any, cast
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, ConnectionPool, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from hubbub.core.stats import Figure

log = logging.getLogger(__name__)

#: Seconds between two health probes of Redis (engines/cluster), and the longest a probe may take (docs/cluster.md).
HEALTH_INTERVAL_S = 0.25
HEALTH_TIMEOUT_S = 0.5
#: The URL scheme of a Redis Cluster (``redis+cluster://host:port``, any of its nodes).
CLUSTER_SCHEME = "redis+cluster"
#: Options of a single-server pool that a cluster client has no counterpart for (it opens connections per node).
_POOL_ONLY = ("timeout",)
#: What counts as "Redis is not answering" (a command's own error, e.g. NOGROUP, does not).
LINK_ERRORS = (RedisConnectionError, RedisTimeoutError, OSError)


class RedisLink:
    """Shared by every Redis client of one node; read by readiness (``up``) and by the metrics."""

    def __init__(self) -> None:
        self.commands = 0
        self.up = True
        #: monotonic time Redis was marked down, for the log line when it is back.
        self._down_at = 0.0

    def failed(self, exc: BaseException) -> None:
        if self.up:
            self.up = False
            self._down_at = time.monotonic()
            log.warning("redis_down", extra={"error": str(exc) or type(exc).__name__})

    def answered(self) -> None:
        if not self.up:
            self.up = True
            log.warning("redis_up", extra={"down_s": round(time.monotonic() - self._down_at, 2)})

    def figures(self) -> Iterator[Figure]:
        yield Figure(
            "redis_commands", "counter", "Redis commands sent (0 on the embedded engines).", self.commands
        )
        yield Figure(
            "redis_up", "gauge", "1 while this node reaches Redis, 0 while it does not.", int(self.up)
        )


def _watched(base: type[AbstractConnection], link: RedisLink) -> type[AbstractConnection]:
    """``base`` (plain, TLS or Unix socket, as the URL says) reporting its commands and failures to ``link``."""

    class Watched(base):  # type: ignore[valid-type,misc]
        def pack_command(self, *args: Any) -> list[bytes]:
            link.commands += 1
            return super().pack_command(*args)  # type: ignore[no-any-return]

        def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
            commands = list(commands)
            link.commands += len(commands)
            return super().pack_commands(commands)  # type: ignore[no-any-return]

        async def connect(self) -> None:  # redis-py < 5.3 connects here; later versions delegate below
            try:
                await super().connect()
            except LINK_ERRORS as exc:
                link.failed(exc)
                raise

        async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().connect_check_health(*args, **kwargs)
            except LINK_ERRORS as exc:
                link.failed(exc)
                raise

        async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
            try:
                await super().send_packed_command(*args, **kwargs)
            except LINK_ERRORS as exc:
                link.failed(exc)
                raise

        async def read_response(self, *args: Any, **kwargs: Any) -> Any:
            try:
                return await super().read_response(*args, **kwargs)
            except LINK_ERRORS as exc:
                link.failed(exc)
                raise

    Watched.__name__ = Watched.__qualname__ = f"Watched{base.__name__}"
    return Watched


def watched_client(
    url: str, link: RedisLink, *, pool_class: type[ConnectionPool] = ConnectionPool, **options: Any
) -> aioredis.Redis:
    """A client for ``url`` (what ``Redis.from_url`` builds, with the same options) whose connections
    report to ``link``."""
    if urlsplit(url).scheme == CLUSTER_SCHEME:
        return _cluster_client(url, link, **options)
    url_options: dict[str, Any] = dict(parse_url(url))
    base = url_options.pop("connection_class", Connection)
    pool = pool_class(connection_class=_watched(base, link), **{**options, **url_options})
    return aioredis.Redis.from_pool(pool)


class _Cluster(RedisCluster):
    """redis-py's cluster client, discovering the cluster before any command: left to itself (8.1), script
    calls racing the first discovery find the seed node's connections closed under them (AttributeError on a
    closed writer); discovery runs once, under the client's own lock."""

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            await self.initialize()
        return await super().execute_command(*args, **kwargs)


def _cluster_client(url: str, link: RedisLink, **options: Any) -> aioredis.Redis:
    """A Redis Cluster client seeded from the URL's node, every node's connections reporting to ``link``.

    Typed as the single-server client: the engines call only commands both have."""
    parts = urlsplit(url)
    for name in _POOL_ONLY:
        options.pop(name, None)
    client = _Cluster(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        username=parts.username,
        password=parts.password,
        **options,
    )
    watched = cast(type[Connection], _watched(Connection, link))
    # The cluster client builds a node's connections from these options (the seed node already exists).
    client.connection_kwargs["connection_class"] = watched
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_class = watched
    return cast(aioredis.Redis, client)


def connect(url: str, link: RedisLink, timeout: float = 5.0) -> aioredis.Redis:
    """The client a node's cluster engines share: it retries a command a few times on a broken connection
    (a restarted Redis), briefly, and reports its commands and failures to ``link``."""
    return watched_client(
        url,
        link,
        socket_connect_timeout=2,
        socket_timeout=timeout,
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
