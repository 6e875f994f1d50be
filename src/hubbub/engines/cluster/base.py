"""The cluster membership interface: which nodes are alive, what they report, and the backend's health.

Contract (tests/contract/test_cluster.py runs it against every implementation):
- **Liveness.** A node is alive from ``start`` until ``close``, or until it stops renewing (it died, or
  stalled): then it counts as dead within ``alive_ttl_s`` (6 s on Redis). ``is_alive`` of this node is
  always true; of another, the answer may be up to a second old, either way. Engines that route to a node
  ask this first, so a dead node gets no new registry entries or queue writes, and its queue is deleted by
  the first node that notices. ``incarnation_of`` is the node's lease: a token that changes when a node
  restarts under the same id (None while it is dead), so what the previous process left is told apart.
- **Node list.** ``live_nodes`` names every node alive for more than a second (the targets of a broadcast).
  ``report_load`` publishes this node's load, best effort (a failure is logged, never raised); ``nodes``
  lists every node that reported recently, dead ones included with ``alive`` false for ten minutes, so an
  operator sees which node vanished. ``nodes`` raises ``UNAVAILABLE`` if the backend does not answer.
- **Node numbers.** ``lease_node_number`` gives a number (0-1023) distinct from those of the last 1,023
  nodes that leased one, for message ids; None on one node (it derives its own).
- **Health.** ``ping`` raises ``UNAVAILABLE`` unless the backing service answers. It answers from state kept
  current by a probe and by every failing command, without a round trip, so ``/readyz`` may call it freely.
- **Recovery.** When the backend lost this node's state (Redis restarted empty), the hooks given to
  ``on_recover`` run in the order given, each rewriting what its engine keeps there; at most one recovery
  runs at a time. Nothing durable lives in these engines: seqs and messages are in the database.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable, Iterable

import msgspec

from hubbub.core.stats import Figure

#: What ``Cluster.on_recover`` runs: rewrite an engine's state in a backend that lost it.
RecoverHook = Callable[[], Awaitable[None]]


class NodeLoad(msgspec.Struct, kw_only=True):
    """One node's self-reported load, as ``hubbub admin nodes`` lists it."""

    node: str
    #: Open WebSocket connections (authenticated or not) and distinct users among them.
    connections: int = 0
    users: int = 0
    started_at: int = 0
    #: When the node last reported (ms); nodes report every ``load_report_s``.
    reported_at: int = 0
    draining: bool = False
    #: Whether the node's liveness key is there (filled in by ``nodes``; a dead node's last report stays a
    #: while, so an operator sees which node vanished).
    alive: bool = True


class Cluster(abc.ABC):
    node_id: str
    #: This process's token in its lease (``incarnation_of`` of this node).
    incarnation: str = "1"

    @abc.abstractmethod
    async def start(self) -> None:
        """Join the cluster: this node is alive from now on (renewed in the background)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the cluster: this node is dead at once and drops out of the node list."""

    @abc.abstractmethod
    async def is_alive(self, node: str) -> bool: ...

    async def incarnation_of(self, node: str) -> str | None:
        """Which process of ``node`` is alive (a token that changes when a node restarts under the same
        id), None if it is dead: the node's lease, which its registry entries name."""
        return "1" if await self.is_alive(node) else None

    @abc.abstractmethod
    async def live_nodes(self) -> list[str]:
        """Every node believed alive, this one included, sorted."""

    async def lease_node_number(self) -> int | None:
        """A number (0-1023) no other live node of the cluster holds, for message ids; None on one node."""
        return None

    async def ping(self) -> None:  # noqa: B027  (one process has nothing to ask; Redis overrides it)
        """Raise UNAVAILABLE unless the backing service answers."""

    @abc.abstractmethod
    async def report_load(self, load: NodeLoad) -> None:
        """Publish this node's load. Best effort: a failure is logged, never raised."""

    @abc.abstractmethod
    async def nodes(self) -> list[NodeLoad]:
        """Every node that reported recently, live or not, by node id."""

    def on_recover(self, hook: RecoverHook) -> None:  # noqa: B027  (one process never loses its state)
        """Run ``hook`` whenever the backend lost this node's state, after this node is alive there again."""

    async def recover(self, why: str) -> None:  # noqa: B027  (one process never loses its state)
        """An engine found its state gone from the backend (``why``): announce this node and run the hooks."""

    def figures(self) -> Iterable[Figure]:
        """The membership's figures for ``/metrics`` (core/stats.py); none on one node."""
        return ()
