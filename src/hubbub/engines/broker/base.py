"""The broker interface: where each user's connections live, and getting events to them.

Contract (tests/contract/test_broker.py runs it against every implementation):
- ``register`` makes the connection the holder of its (user, terminal) slot, atomically: of two
  registrations of one slot at once, the later one holds it and the earlier holder, on any node, is closed
  with ``Close.REPLACED`` — also when it has not finished authenticating (the sink finds it by id).
- ``unregister`` frees the slot only if this connection still holds it (a replaced connection that closes
  late must not log the new one out).
- ``publish`` delivers each event's payload to every live connection of its recipients, except
  ``exclude_conn``. Delivery is **at most once** and best effort: a lost push is filled by the client's
  next sync, so nothing durable may depend on it. Events of one ``publish`` call reach a connection in order.
- ``presence`` is derived from the registry: a user is online while any terminal is registered.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

import msgspec

from hubbub.protocol.close_codes import Close


class Event(msgspec.Struct, frozen=True):
    """An encoded server frame and who gets it; encoded once for every recipient."""

    recipients: Sequence[int]
    payload: bytes
    exclude_conn: str | None = None
    #: Only this connection of the recipients gets it (call signalling to the one device in the call).
    only_conn: str | None = None


class News(msgspec.Struct, frozen=True):
    """A group has messages up to ``seq``: every node signals its own online members of a hot group
    (push-pull), and drops its roster of a group that changed."""

    conv: str
    seq: int
    mentions: tuple[int, ...] = ()
    mention_all: bool = False
    #: The group changed (members, roles, flag, profile): nodes drop their roster of it. Sent for every group,
    #: hot or not, so no node keeps a roster read while a group was hot (services/hot/rosters.py).
    group_changed: bool = False
    #: Signal the members: the group is push-pull. False only for a change of a group that is pushed.
    signal: bool = True


class Registered(msgspec.Struct, frozen=True):
    #: The user's terminals before and after this registration.
    before: tuple[str, ...]
    after: tuple[str, ...]


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


class LocalSink(Protocol):
    """What the broker calls on the local gateway (its hub of connections)."""

    def deliver(self, events: Sequence[Event]) -> None: ...

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        """Close the user's local connections: the one ``conn_id``, those of session ``sid``, or all —
        including those still registering, so a close racing a login is never lost."""

    def news(self, items: Sequence[News]) -> None:
        """Hot-group news for this node to signal to its local members."""


class Broker(abc.ABC):
    node_id: str

    @abc.abstractmethod
    async def start(self, sink: LocalSink) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def lease_node_number(self) -> int | None:
        """A number (0-1023) no other live node of the cluster holds, for message ids; None on one node."""
        return None

    async def ping(self) -> None:  # noqa: B027  (one process has nothing to ask; Redis overrides it)
        """Raise UNAVAILABLE unless the broker's backing service answers."""

    @abc.abstractmethod
    async def register(self, user_id: int, terminal: str, conn_id: str) -> Registered: ...

    @abc.abstractmethod
    async def unregister(self, user_id: int, terminal: str, conn_id: str) -> Registered | None:
        """None if the connection no longer held its slot."""

    @abc.abstractmethod
    async def publish(self, events: Sequence[Event]) -> None: ...

    @abc.abstractmethod
    async def disconnect(
        self, user_id: int, code: Close, reason: str, *, conn_id: str | None = None, sid: str | None = None
    ) -> None:
        """Close connections of a user wherever they are (see ``LocalSink.disconnect``)."""

    @abc.abstractmethod
    async def announce(self, items: Sequence[News]) -> None:
        """Hand hot-group news to every live node (one queue write per node, whatever the group's size).
        At most once, like ``publish``: a member who misses a signal catches up at the next one or by sync."""

    @abc.abstractmethod
    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """Online terminals per user; users with none are left out."""

    @abc.abstractmethod
    async def report_load(self, load: NodeLoad) -> None:
        """Publish this node's load. Best effort: a failure is logged, never raised."""

    @abc.abstractmethod
    async def nodes(self) -> list[NodeLoad]:
        """Every node that reported recently, live or not, by node id."""
