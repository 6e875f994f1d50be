"""Prometheus metrics for one node, served at ``GET /metrics``.

Hot paths keep plain integer counters on the objects that own them (the hub, the batcher, the signaller,
the storage engine, the Redis link); each reports them through the stats interface (hubbub/core/stats.py),
and the collector here asks every provider the node registered, at scrape time. That costs nothing per frame,
where a prometheus Counter would take a lock on every increment of a 1,000-socket fan-out. Histograms are
observed once per batch or per request, never per delivered frame. What each metric means:
docs/operations.md (tests/e2e/test_metrics.py checks that every metric named there is exported and moves).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hubbub.core.stats import Figure, StatsProvider

if TYPE_CHECKING:
    from hubbub.gateway.hub import Hub
    from hubbub.services.batcher import SendBatcher
    from hubbub.services.hot import HotGroups
    from hubbub.services.hot.signals import Signaller

PREFIX = "hubbub_"


class NodeMetrics:
    """The node's registry, the few metrics observed directly, and the registered stats providers."""

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
        self.providers: list[StatsProvider] = [_Own(self)]
        self.registry.register(_Providers(self.providers))

    def provide(self, *providers: StatsProvider) -> None:
        """Export these components' figures from now on."""
        self.providers.extend(providers)


class _Own:
    """The figures NodeMetrics keeps itself: errors returned to clients, uptime."""

    def __init__(self, metrics: NodeMetrics) -> None:
        self.metrics = metrics

    def figures(self) -> Iterator[Figure]:
        about = "Errors returned to clients, by code."
        for code, count in sorted(self.metrics.errors.items()):
            yield Figure("errors", "counter", about, count, (("code", code),))
        if "internal" not in self.metrics.errors:  # a series from the start, for the alert on it
            yield Figure("errors", "counter", about, 0, (("code", "internal"),))
        yield Figure(
            "uptime_seconds", "gauge", "Seconds since the node started.", time.time() - self.metrics.started
        )


class _Providers(Collector):
    """Asks every provider for its figures; figures of the same name and labels are summed."""

    def __init__(self, providers: list[StatsProvider]) -> None:
        self.providers = providers

    def collect(self) -> Iterator[Metric]:
        first: dict[str, Figure] = {}
        series: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
        for provider in self.providers:
            for figure in provider.figures():
                first.setdefault(figure.name, figure)
                values = series.setdefault(figure.name, {})
                values[figure.labels] = values.get(figure.labels, 0) + figure.value
        for name, figure in first.items():
            family_type = CounterMetricFamily if figure.kind == "counter" else GaugeMetricFamily
            family = family_type(PREFIX + name, figure.help, labels=[key for key, _ in figure.labels])
            for labels, value in sorted(series[name].items()):
                family.add_metric([value for _, value in labels], value)
            yield family


class HubStats:
    """This node's WebSocket connections and socket traffic."""

    def __init__(self, hub: Hub, canaries: Collection[int] = ()) -> None:
        self.hub = hub
        #: Users counted apart: the delivery canary's accounts are not people (services/canaries.py).
        self.canaries = canaries

    def figures(self) -> Iterator[Figure]:
        by_terminal: Counter[str] = Counter()
        canary_conns = 0
        buffered = 0
        largest = 0
        for conn in self.hub.by_id.values():
            if conn.user_id in self.canaries:
                canary_conns += 1
            else:
                by_terminal[conn.terminal or "unauthenticated"] += 1
            size = conn.transport.get_write_buffer_size()
            buffered += size
            largest = max(largest, size)
        for terminal, count in sorted(by_terminal.items()) or [("web", 0)]:
            yield Figure(
                "connections", "gauge", "Open WebSocket connections.", count, (("terminal", terminal),)
            )
        people = len(self.hub.by_user) - sum(1 for user in self.canaries if user in self.hub.by_user)
        yield Figure("online_users", "gauge", "Users with a connection on this node.", people)
        yield Figure(
            "canary_connections",
            "gauge",
            "The delivery canary's connections (not in the figures above).",
            canary_conns,
        )
        yield Figure(
            "send_buffer_bytes", "gauge", "Bytes queued for sending, all connections together.", buffered
        )
        yield Figure("send_buffer_max_bytes", "gauge", "The fullest connection's send buffer.", largest)
        wire = self.hub.stats
        yield Figure(
            "frames_out", "counter", "Frames written to sockets (pushes and signals).", wire.frames_out
        )
        yield Figure("bytes_out", "counter", "Bytes of frames written to sockets.", wire.bytes_out)
        yield Figure("frames_in", "counter", "Frames received from clients.", wire.frames_in)


class BatcherStats:
    """The send batcher: storing transactions and the messages they stored."""

    def __init__(self, batcher: SendBatcher) -> None:
        self.batcher = batcher

    def figures(self) -> Iterator[Figure]:
        yield Figure("store_batches", "counter", "Storing transactions.", self.batcher.batches)
        by_type = self.batcher.by_type
        for kind in sorted({"text", *by_type}):  # text: a series from the start
            yield Figure(
                "messages_stored", "counter", "Messages stored, by type.", by_type[kind], (("type", kind),)
            )


class HotStats:
    """Hot groups: news frames this node sent, and pulls by where they were served from."""

    def __init__(self, hot: HotGroups, signaller: Signaller) -> None:
        self.hot = hot
        self.signaller = signaller

    def figures(self) -> Iterator[Figure]:
        yield Figure("hot_signals", "counter", "Hot-group news frames sent.", self.signaller.signals_sent)
        about = "Hot-group pulls, by where they were served from."
        yield Figure("hot_pulls", "counter", about, self.hot.cache_hits, (("source", "cache"),))
        yield Figure("hot_pulls", "counter", about, self.hot.cache_misses, (("source", "database"),))
