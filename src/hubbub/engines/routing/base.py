"""The routing interface: getting encoded frames, closes and node broadcasts to where connections are.

Routing carries opaque bytes: it knows users, connections and nodes, never what a payload means (the hot
groups' news, say, is one of its broadcasts, encoded and decoded by services/hot/news.py).

Contract (tests/contract/test_routing.py runs it against every implementation):
- ``publish`` delivers each event's payload to every live connection of its recipients, except
  ``exclude_conn``. Delivery is **at most once** and best effort: a lost push (a node crash, a Redis outage,
  a slow consumer cut off) is filled by the client's next sync, so nothing durable may depend on it; if
  routing through the cluster fails, this node's own connections still get theirs. Events of one ``publish``
  call reach a connection in order, and events of successive calls from one node in the order of the calls.
- ``disconnect`` closes connections of a user wherever they are (see ``LocalSink.disconnect``); with
  ``node``, on that node whatever the registry says (a takeover: the registry already names the successor).
  It raises ``UNAVAILABLE`` if it cannot find the user's nodes, since a ban or a revocation that silently
  missed a socket would be a security hole.
- ``broadcast`` hands one payload to every live node, this one included (one queue write per node). At most
  once, like ``publish``: a node that misses one catches up by whatever its user repeats.
- The work is bounded per call, not per recipient: one lookup round trip for all recipients and one queue
  write per target node.
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


class LocalSink(Protocol):
    """What routing calls on the local gateway (its hub of connections)."""

    def deliver(self, events: Sequence[Event]) -> None: ...

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        """Close the user's local connections: the one ``conn_id``, those of session ``sid``, or all —
        including those still registering, so a close racing a login is never lost."""

    def broadcast(self, payload: bytes) -> None:
        """A node broadcast (from any node, this one included) for this node's listener."""


class Routing(abc.ABC):
    node_id: str

    @abc.abstractmethod
    async def start(self, sink: LocalSink) -> None:
        """Start receiving for this node: from now on, what is routed here reaches ``sink``."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def publish(self, events: Sequence[Event]) -> None: ...

    @abc.abstractmethod
    async def disconnect(
        self,
        user_id: int,
        code: Close,
        reason: str,
        *,
        conn_id: str | None = None,
        sid: str | None = None,
        node: str | None = None,
    ) -> None: ...

    @abc.abstractmethod
    async def broadcast(self, payload: bytes) -> None: ...
