"""The stats interface: how a component hands its figures to the metrics collector (hubbub/metrics.py).

A component keeps plain counters on itself (an increment on a hot path costs nothing) and reports them when
``/metrics`` is scraped, as ``Figure``s. The node registers each component that has figures; the collector
asks every registered provider and sums figures that share a name and labels (the cluster engines, the hot-group
state and the rate limiter each send Redis commands, and ``hubbub_redis_commands_total`` is their total).
A component that is not registered, or is missing, reports nothing rather than a zero that looks real.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Literal, NamedTuple, Protocol


class Figure(NamedTuple):
    #: Without the ``hubbub_`` prefix; a counter's name also without ``_total`` (the exposition adds it).
    name: str
    kind: Literal["counter", "gauge"]
    help: str
    value: float
    labels: tuple[tuple[str, str], ...] = ()


class StatsProvider(Protocol):
    def figures(self) -> Iterable[Figure]:
        """The component's figures now. Called at scrape time on the event loop: no I/O, nothing slow."""
        ...


class Reading:
    """A provider for one figure read from a component that keeps a single counter (e.g. SQL queries)."""

    def __init__(
        self, name: str, kind: Literal["counter", "gauge"], help: str, read: Callable[[], float]
    ) -> None:
        self.name, self.kind, self.help, self.read = name, kind, help, read

    def figures(self) -> Iterator[Figure]:
        yield Figure(self.name, self.kind, self.help, self.read())
