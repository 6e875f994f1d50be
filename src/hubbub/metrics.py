"""Prometheus metrics for one node, served at ``GET /metrics``.

Hot paths keep plain integer counters on the objects that own them (the hub, the batcher, the signaller,
the storage engine); a custom collector reads them at scrape time. That costs nothing per frame, where a
prometheus Counter would take a lock on every increment of a 1,000-socket fan-out. Histograms are observed
once per batch or per request, never per delivered frame. What each metric means: docs/operations.md.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from hubbub.node import Node


class NodeMetrics:
    """The node's registry and the few metrics observed directly."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.ack_latency = Histogram(
            "hubbub_ack_latency_seconds",
            "From a send reaching the server to its ack being written (stored in between).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "hubbub_store_batch_messages",
            "Messages stored per transaction.",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.errors: Counter[str] = Counter()
        self.started = time.time()

    def attach(self, node: Node) -> None:
        self.registry.register(_NodeCollector(node, self))


class _NodeCollector(Collector):
    def __init__(self, node: Node, metrics: NodeMetrics) -> None:
        self.node = node
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        node, hub = self.node, self.node.hub
        by_terminal: Counter[str] = Counter()
        buffered = 0
        largest = 0
        for conn in hub.by_id.values():
            by_terminal[conn.terminal or "unauthenticated"] += 1
            size = conn.transport.get_write_buffer_size()
            buffered += size
            largest = max(largest, size)
        connections = GaugeMetricFamily(
            "hubbub_connections", "Open WebSocket connections.", labels=["terminal"]
        )
        for terminal, count in sorted(by_terminal.items()):
            connections.add_metric([terminal], count)
        yield connections
        yield GaugeMetricFamily(
            "hubbub_online_users", "Users with a connection on this node.", value=len(hub.by_user)
        )
        yield GaugeMetricFamily(
            "hubbub_send_buffer_bytes", "Bytes queued for sending, all connections together.", value=buffered
        )
        yield GaugeMetricFamily(
            "hubbub_send_buffer_max_bytes", "The fullest connection's send buffer.", value=largest
        )
        yield CounterMetricFamily(
            "hubbub_frames_out", "Frames written to sockets (pushes and signals).", value=hub.stats.frames_out
        )
        yield CounterMetricFamily(
            "hubbub_bytes_out", "Bytes of frames written to sockets.", value=hub.stats.bytes_out
        )
        yield CounterMetricFamily(
            "hubbub_frames_in", "Frames received from clients.", value=hub.stats.frames_in
        )

        batcher = node.services.messages.batcher
        yield CounterMetricFamily("hubbub_store_batches", "Storing transactions.", value=batcher.batches)
        stored = CounterMetricFamily("hubbub_messages_stored", "Messages stored, by type.", labels=["type"])
        for kind, count in sorted(batcher.by_type.items()):
            stored.add_metric([kind], count)
        yield stored
        yield CounterMetricFamily(
            "hubbub_db_queries", "SQL statements executed.", value=node.storage_queries()
        )
        yield CounterMetricFamily(
            "hubbub_redis_commands",
            "Redis commands sent (0 on the embedded engines).",
            value=node.redis_commands(),
        )
        errors = CounterMetricFamily("hubbub_errors", "Errors returned to clients, by code.", labels=["code"])
        for code, count in sorted(self.metrics.errors.items()):
            errors.add_metric([code], count)
        yield errors

        hot = node.services.hot
        yield CounterMetricFamily(
            "hubbub_hot_signals", "Hot-group news frames sent.", value=node.signaller.signals_sent
        )
        pulls = CounterMetricFamily(
            "hubbub_hot_pulls", "Hot-group pulls, by where they were served from.", labels=["source"]
        )
        pulls.add_metric(["cache"], hot.cache_hits)
        pulls.add_metric(["database"], hot.cache_misses)
        yield pulls
        lag = node.stream_lag()
        if lag is not None:
            yield GaugeMetricFamily(
                "hubbub_node_stream_lag", "Entries waiting in this node's queue.", value=lag
            )
        yield GaugeMetricFamily(
            "hubbub_uptime_seconds",
            "Seconds since the node started.",
            value=time.time() - self.metrics.started,
        )
