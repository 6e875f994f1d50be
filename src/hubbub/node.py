"""A running node: starts what the composition root (``hubbub/root.py``) built for its role, serves HTTP
and WebSocket, reports its load, and drains on SIGTERM.

No module-level singletons: everything a node uses hangs off its ``Root``, so a test can run two nodes in one
process. What is built and started for each role is decided in ``root.py``.
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
from hubbub.core.periodic import Periodic
from hubbub.engines.cluster.base import NodeLoad
from hubbub.platform.app import build_metrics_app
from hubbub.platform.limits import server_options
from hubbub.root import Root

log = logging.getLogger(__name__)


class Node:
    def __init__(self, config: Config) -> None:
        self.root = root = Root(config)
        self.config = root.config
        self.storage = root.get_storage()
        self.redis_link = root.get_redis_link()
        self.cluster = root.get_cluster()
        self.registry = root.get_registry()
        self.routing = root.get_routing()
        self.limiter = root.get_limiter()
        self.hot_state = root.get_hot_state()
        self.blobs = root.get_blobs()
        self.services = root.get_services()
        #: Keeps the search index behind the messages (services/search.py); started where the role says.
        self.indexer = root.get_indexer()
        self.hub = root.get_hub()
        self.signaller = self.services.hot.signaller
        self.metrics = root.get_metrics()
        #: None on a platform-only node (no ``/ws``).
        self.gateway = root.get_gateway()
        self.app = root.get_app()
        self._runner: web.AppRunner | None = None
        self._metrics_runner: web.AppRunner | None = None
        self.port = config.port
        #: The port of ``metrics_listen`` once started (its own if it asked for port 0).
        self.metrics_port: int | None = None
        self._stopped = False
        self._started_at = 0
        self._reporter = Periodic("load-report", config.load_report_s, self.report_load, jitter=0.1)

    async def start(self) -> None:
        await self.storage.start()
        await self.blobs.start()
        await self.services.media.start()
        await self.services.words.load()
        self.services.words.start()
        # The queue first: membership reads its lag as it starts, so the gauge is there from the first scrape.
        await self.routing.start(self.hub)
        await self.cluster.start()
        if self.config.node_number >= 0:
            self.services.ids.set_number(self.config.node_number)
        elif (number := await self.cluster.lease_node_number()) is not None:
            self.services.ids.set_number(number)
        await self.services.social.start()  # read counts are pushed from wherever the read was taken
        if self.root.serves_websocket:  # nothing to renew or sweep on a node without connections
            await self.registry.start(self.hub)
            self.hub.start()
            self.services.calls.start()  # renews its connections' call leases, ends lost calls
        if self.root.serves_api:  # the database's housekeeping, kept off the nodes that hold connections
            self.services.retention.start()
            self.services.exports.start()
            self.indexer.start()
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
        self._reporter.start()

    async def _start_metrics_listener(self) -> None:
        host, _, port = self.config.metrics_listen.rpartition(":")
        self._metrics_runner = web.AppRunner(build_metrics_app(self.config, self.metrics), access_log=None)
        await self._metrics_runner.setup()
        site = web.TCPSite(
            self._metrics_runner, host.strip("[]") or "127.0.0.1", int(port), reuse_address=True
        )
        await site.start()
        for address in self._metrics_runner.addresses:
            self.metrics_port = int(address[1])
        log.info("metrics on http://%s:%d/metrics", host or "127.0.0.1", self.metrics_port or 0)

    async def report_load(self) -> None:
        """Publish this node's load for ``hubbub admin nodes`` (and ``GET /api/v1/admin/nodes``)."""
        await self.cluster.report_load(
            NodeLoad(
                node=self.config.effective_node_id,
                connections=len(self.hub.by_id),
                users=len(self.hub.by_user),
                started_at=self._started_at,
                reported_at=now_ms(),
                draining=self.gateway is not None and not self.gateway.accepting,
            )
        )

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
        if self.gateway is not None:
            await self.gateway.drain(timeout=budget / 2)
        await self._reporter.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.report_load(), 1)  # shown as draining until it is gone
        await self.services.messages.close()  # sends that came over HTTP meanwhile
        if self._runner is not None:
            await self._runner.cleanup()
        if self._metrics_runner is not None:
            await self._metrics_runner.cleanup()
        await self.root.close()  # services, then engines (root.py)
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
