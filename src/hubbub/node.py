"""Composition root: builds one node's engines and services from its config, and runs it.

No module-level singletons: everything a node uses hangs off its ``Node``, so a test can run two nodes in one
process. Engines are chosen here and nowhere else (embedded by default; Redis/PostgreSQL when configured).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from aiohttp import web

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.stats import Reading
from hubbub.engines.blobs.base import BlobStore
from hubbub.engines.broker.base import Broker, NodeLoad
from hubbub.engines.broker.memory import MemoryBroker
from hubbub.engines.calls.base import CallStore
from hubbub.engines.calls.memory import MemoryCallStore
from hubbub.engines.hotgroups.base import HotState
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.redis_link import RedisLink
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.sql import SqlStorage
from hubbub.gateway.hub import Hub
from hubbub.gateway.server import Gateway
from hubbub.gateway.signals import HubAudience
from hubbub.metrics import BatcherStats, HotStats, HubStats, NodeMetrics
from hubbub.platform.app import build_app, build_metrics_app
from hubbub.platform.limits import server_options
from hubbub.services.container import Services
from hubbub.services.hot import HotPolicy
from hubbub.services.search import SearchIndexer, SearchStats

log = logging.getLogger(__name__)


def build_storage(config: Config) -> Storage:
    if not config.database:
        config.ensure_data_dir()
    return SqlStorage(
        config.database_url,
        is_hot=HotPolicy.of(config).group_is_hot,
        first_user_admin=config.first_user_admin,
    )


def build_broker(config: Config, link: RedisLink | None = None) -> Broker:
    """In-process for one node; Redis (registry, presence, per-node streams) when ``--redis`` is given.
    ``link``: shared by the node's Redis clients (commands counted, failures noticed: engines/redis_link.py)."""
    if config.redis:
        from hubbub.engines.broker.redis import RedisBroker

        return RedisBroker(config.redis, config.effective_node_id, link=link)
    return MemoryBroker(config.effective_node_id)


def build_hot_state(config: Config, link: RedisLink | None = None) -> HotState:
    """Recent messages of hot groups: in Redis for a cluster, else in-process."""
    if config.redis:
        import redis.asyncio as aioredis

        from hubbub.engines.hotgroups.redis import RedisHotState
        from hubbub.engines.redis_link import watched_client

        # A blocking pool: a burst of pulls waits for a connection instead of failing for want of one.
        client = watched_client(
            config.redis,
            link or RedisLink(),
            pool_class=aioredis.BlockingConnectionPool,
            max_connections=64,
            timeout=5,
            socket_connect_timeout=2,
            socket_timeout=5,
        )
        return RedisHotState(client, capacity=config.hot_cache_messages)
    return MemoryHotState(config.hot_cache_messages)


def build_limiter(config: Config, link: RedisLink | None = None) -> RateLimiter:
    """Token buckets shared by the cluster through Redis when ``--redis`` is given, else in-process."""
    if config.redis:
        from hubbub.engines.broker.redis import connect
        from hubbub.engines.ratelimit.redis import RedisRateLimiter

        return RedisRateLimiter(config.redis, client=connect(config.redis, timeout=2.0, link=link))
    return MemoryRateLimiter()


def build_blobs(config: Config) -> BlobStore:
    """Uploaded files: an S3-compatible bucket when ``s3_bucket`` is set, else a local directory."""
    if config.s3_bucket:
        from hubbub.engines.blobs.s3 import S3BlobStore

        return S3BlobStore(
            endpoint=config.s3_endpoint,
            bucket=config.s3_bucket,
            access_key=config.s3_access_key,
            secret_key=config.s3_secret_key,
            region=config.s3_region,
            prefix=config.s3_prefix,
        )
    from hubbub.engines.blobs.local import LocalBlobStore

    return LocalBlobStore(config.blob_dir or f"{config.data_dir}/blobs")


def build_call_store(config: Config, link: RedisLink | None = None) -> CallStore:
    """Live calls where every node sees them: Redis for a cluster, else in-process (engines/calls)."""
    if config.redis:
        from hubbub.engines.broker.redis import connect
        from hubbub.engines.calls.redis import RedisCallStore

        return RedisCallStore(connect(config.redis, timeout=2.0, link=link))
    return MemoryCallStore()


class Node:
    def __init__(self, config: Config) -> None:
        if config.redis and not config.jwt_secret:
            raise SystemExit(
                "a cluster node needs the cluster's shared token secret: set HUBBUB_JWT_SECRET (the same on "
                "every node), or each node would reject the others' tokens"
            )
        self.config = config
        self.storage = build_storage(config)
        #: The node's view of its Redis (cluster only): commands sent, and whether it answers.
        self.redis_link = RedisLink() if config.redis else None
        self.broker = build_broker(config, self.redis_link)
        self.limiter = build_limiter(config, self.redis_link)
        self.hot_state = build_hot_state(config, self.redis_link)
        self.blobs = build_blobs(config)
        self.services = Services.build(
            config,
            self.storage,
            self.broker,
            self.limiter,
            self.hot_state,
            self.blobs,
            build_call_store(config, self.redis_link),
        )
        self.hub = Hub(config.heartbeat_s, config.auth_timeout_s)
        self.signaller = self.services.hot.signaller
        self.signaller.attach(HubAudience(self.hub))
        self.hub.on_news = self.services.hot.heard
        self.hub.tracer = self.services.tracer
        self.metrics = NodeMetrics()
        #: Keeps the search index behind the messages (services/search.py); never on the send path.
        batcher = self.services.messages.batcher
        self.indexer = SearchIndexer(config, self.storage, activity=lambda: batcher.batches)
        self.metrics.provide(
            SearchStats(self.services.search, self.indexer),
            HubStats(self.hub),
            BatcherStats(self.services.messages.batcher),
            HotStats(self.services.hot, self.signaller),
        )
        if isinstance(storage := self.storage, SqlStorage):
            self.metrics.provide(
                Reading("db_queries", "counter", "SQL statements executed.", lambda: storage.queries)
            )
        if self.redis_link is not None:
            from hubbub.engines.broker.redis import RedisBroker

            self.metrics.provide(self.redis_link)
            if isinstance(self.broker, RedisBroker):
                self.metrics.provide(self.broker)  # its queue's lag
        self.services.messages.batcher.on_batch = self.metrics.batch_size.observe
        self.gateway = Gateway(self.services, self.hub, self.metrics)
        self.app = build_app(self.services, self.gateway, self.metrics)
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self.port = config.port
        #: The port of ``metrics_listen`` once started (its own if it asked for port 0).
        self.metrics_port: int | None = None
        self._stopped = False
        self._started_at = 0
        self._reporter: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.storage.start()
        await self.blobs.start()
        await self.services.media.start()
        await self.services.words.load()
        self.services.words.start()
        self.services.retention.start()
        self.services.exports.start()
        await self.broker.start(self.hub)
        if self.config.node_number >= 0:
            self.services.ids.set_number(self.config.node_number)
        elif (number := await self.broker.lease_node_number()) is not None:
            self.services.ids.set_number(number)
        self.hub.start()
        self.indexer.start()
        self.services.calls.start()
        self._runner = web.AppRunner(
            self.app,
            handle_signals=False,
            access_log=None,
            shutdown_timeout=5,
            **server_options(self.config),  # slow-loris timeouts (platform/limits.py)
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port, backlog=2048, reuse_address=True)
        await site.start()
        for address in self._runner.addresses:  # port 0: learn the one the OS chose
            self.port = int(address[1])
        if self.config.metrics_listen:
            await self._start_metrics_listener()
        log.info(
            "hubbub node %s listening on http://%s:%d",
            self.config.effective_node_id,
            self.config.host,
            self.port,
        )
        self._started_at = now_ms()
        await self.report_load()
        self._reporter = asyncio.get_running_loop().create_task(self._report_load_forever())

    async def _start_metrics_listener(self) -> None:
        host, _, port = self.config.metrics_listen.rpartition(":")
        if not port.isdigit():
            raise SystemExit(f"metrics_listen must be host:port, not {self.config.metrics_listen!r}")
        self._metrics_runner = web.AppRunner(build_metrics_app(self.config, self.metrics), access_log=None)
        await self._metrics_runner.setup()
        site = web.TCPSite(self._metrics_runner, host.strip("[]") or "127.0.0.1", int(port), reuse_address=True)
        await site.start()
        for address in self._metrics_runner.addresses:
            self.metrics_port = int(address[1])
        log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", self.metrics_port or 0)

    async def report_load(self) -> None:
        """Publish this node's load for ``hubbub admin nodes`` (and ``GET /api/v1/admin/nodes``)."""
        await self.broker.report_load(
            NodeLoad(
                node=self.config.effective_node_id,
                connections=len(self.hub.by_id),
                users=len(self.hub.by_user),
                started_at=self._started_at,
                reported_at=now_ms(),
                draining=not self.gateway.accepting,
            )
        )

    async def _report_load_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.load_report_s)
            try:
                await self.report_load()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("load report failed")

    async def stop(self) -> None:
        """Drain and stop (docs/operations.md, "Draining"): refuse new connections, store and acknowledge
        what is queued, close every client with 4503 so it reconnects to another node, finish in-flight HTTP
        requests, then leave the cluster (registry entries, liveness key, queue). Bounded by
        ``drain_timeout_s``: half of it for the clients to go, the rest for the requests and engines."""
        if self._stopped:
            return
        self._stopped = True
        budget = self.config.drain_timeout_s
        started = time.monotonic()
        log.info("draining", extra={"connections": len(self.hub.by_id), "budget_s": budget})
        await self.gateway.drain(timeout=budget / 2)
        if self._reporter is not None:
            self._reporter.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.report_load(), 1)  # shown as draining until it is gone
        await self.services.words.close()
        await self.services.retention.close()
        await self.services.exports.close()

        await self.indexer.close()
        await self.services.calls.close()
        await self.services.messages.close()  # sends that came over HTTP meanwhile
        await self.services.tracer.close()
        await self.services.media.close()
        self.services.auth.close()  # the password hashing threads
        if self._runner is not None:
            await self._runner.cleanup()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await self.blobs.close()
        await self.broker.close()
        self.services.hot.close()  # pending signals: their terminals are gone
        await self.hot_state.close()
        close_limiter = getattr(self.limiter, "close", None)  # the Redis limiter holds a connection pool
        if close_limiter is not None:
            await close_limiter()
        await self.storage.close()
        log.info("stopped", extra={"seconds": round(time.monotonic() - started, 2)})

    @property
    def url(self) -> str:
        """Where a person on this machine reaches the node (an any-address listener is reached locally)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(
            self.config.host, self.config.host
        )
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    async def run_forever(self, on_started: Callable[[], None] | None = None) -> None:
        await self.start()
        if on_started is not None:
            on_started()
        # Everything built at start-up lives as long as the process: move it out of the collector's sight,
        # and collect the young generation less eagerly, so a full collection over thousands of connections'
        # objects does not stall every socket for tens of milliseconds at a time.
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        # The bound holds even if something hangs: a second signal, or the budget plus a margin, ends the
        # process from a thread the event loop cannot block.
        deadline = self.config.drain_timeout_s + 5
        watchdog = threading.Timer(deadline, _exit_now, ("drain took longer than drain_timeout_s + 5 s",))
        watchdog.daemon = True
        watchdog.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _exit_now, "a second signal during the drain")
        try:
            await self.stop()
        finally:
            watchdog.cancel()


def _exit_now(why: str) -> None:
    log.error("exiting before the drain finished: %s", why)
    logging.shutdown()
    os._exit(1)
