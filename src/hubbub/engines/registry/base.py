"""The connection registry interface: who holds each (user, terminal) slot, and presence derived from it.

Contract (tests/contract/test_registry.py runs it against every implementation):
- ``register`` makes the connection the holder of its (user, terminal) slot, **atomically**: of two
  registrations of one slot at once, on any nodes, the later one holds it, and each earlier holder is named
  as ``Registered.replaced`` of exactly one call. The caller must close that connection (with
  ``Close.REPLACED``, through ``Routing.disconnect(..., node=replaced.node)``), or two terminals of one slot
  stay open. A node's own record of what it holds (what it renews) always names the connection the registry
  kept.
- ``unregister`` frees the slot only if this connection still holds it (a replaced connection that closes
  late must not log the new one out); None otherwise.
- **Expiry.** Entries must stop counting when their node dies, without per-user renewals (upkeep must not
  grow with online users): an entry names its node's process (``Cluster.incarnation_of``), and is live only
  while that lease is, so a dead node's users leave presence as soon as the node counts as dead, and a node
  restarted under the same id does not inherit its predecessor's entries. Dead entries are swept in the
  background. When the backend lost this node's state, the recovery rewrites its entries; a rewrite that finds
  its slot taken by another connection does not overwrite it: it closes its own connection as replaced,
  through the ``LocalCloser`` given to ``start``.
- ``presence`` is derived from the registry: a user is online while any terminal is held by a connection of
  a live node. Users with none are left out.
- **Sessions cap** (issue 15). ``register(..., cap=n)`` keeps at most ``n`` live slots for the user: when the
  new one makes ``n + 1``, the slot whose connection was least recently active (``touch``, else its
  registration) is freed in the same atomic step and named in ``Registered.evicted``; the caller closes it
  with ``Close.EVICTED``. The new slot is never the one evicted. A slot is a terminal class (``web``) or, for
  clients that send a device id, ``<terminal>#<device>`` (``slot_of``); presence reports terminal classes.
- ``touch`` records a connection's activity (at most as fresh as the last renewal on Redis).
- ``locate`` names the nodes that hold the users' connections, for routing: one round trip for any number
  of users.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Protocol

import msgspec

from hubbub.protocol.close_codes import Close


class Holder(msgspec.Struct, frozen=True):
    """A connection holding a slot: where it is."""

    node: str
    conn_id: str


class Registered(msgspec.Struct, frozen=True):
    #: The user's terminals before and after this registration.
    before: tuple[str, ...]
    after: tuple[str, ...]
    #: The connection this registration took the slot from, still open: the caller closes it.
    replaced: Holder | None = None
    #: Connections freed to keep the user within the sessions cap, still open: the caller closes them.
    evicted: tuple[Holder, ...] = ()


#: Separates a slot's terminal class from its device id (device ids cannot contain it).
DEVICE_SEP = "#"


def slot_of(terminal: str, device: str | None) -> str:
    """The registry slot of a connection: one per device when the client names one, else one per terminal."""
    return f"{terminal}{DEVICE_SEP}{device}" if device else terminal


def terminal_of(slot: str) -> str:
    return slot.split(DEVICE_SEP, 1)[0]


def terminals_of(slots: Sequence[str]) -> tuple[str, ...]:
    """The terminal classes of some slots, sorted and distinct: what presence shows of them."""
    return tuple(sorted({terminal_of(s) for s in slots}))


class LocalCloser(Protocol):
    """What the registry calls to close a connection of this node (the gateway's hub)."""

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None: ...


class Registry(abc.ABC):
    node_id: str

    @abc.abstractmethod
    async def start(self, closer: LocalCloser) -> None:
        """Begin keeping this node's entries; ``closer`` closes a local connection whose slot was taken."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Free every slot this node holds."""

    @abc.abstractmethod
    async def register(self, user_id: int, terminal: str, conn_id: str, *, cap: int = 0) -> Registered:
        """Take the slot ``terminal`` (see ``slot_of``); with ``cap`` > 0, evict down to ``cap`` slots."""

    @abc.abstractmethod
    def touch(self, user_id: int, terminal: str, conn_id: str) -> None:
        """The connection was active now (it is the last to be evicted). No I/O: the gateway calls this for
        every frame but ``ping``. What other nodes see of it may lag: ``flush_activity`` sends it on."""

    @abc.abstractmethod
    async def flush_activity(self) -> None:
        """Send the activity ``touch`` recorded to where every node's ``register`` reads it (the engine's own
        upkeep calls this; tests call it to see it at once). Never raises: activity is a hint for the cap."""

    @abc.abstractmethod
    async def unregister(self, user_id: int, terminal: str, conn_id: str) -> Registered | None:
        """None if the connection no longer held its slot."""

    @abc.abstractmethod
    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        """Online terminals per user; users with none are left out."""

    @abc.abstractmethod
    async def locate(
        self, user_ids: Sequence[int], *, conn_id: str | None = None, stale: bool = False
    ) -> dict[int, set[str]]:
        """The nodes holding each user's connections (only ``conn_id``'s, if given); users with none are left
        out. Entries of a dead process count only with ``stale`` (a close must reach a node that lost its
        lease; a push need not). The answer may name a node that just died: routing skips dead nodes."""
