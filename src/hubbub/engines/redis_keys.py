"""Every Redis key the cluster engines use, in one place (docs/cluster.md, "What lives in Redis").

``P`` is the key prefix. Each key carries a hash tag (the part in braces), so a key's slot is fixed by the
user or node it is about and the same code runs on Redis Cluster; every multi-key script call (the
registry's) touches one user's key only, and ``{nodes}`` groups the node set, the load reports and the number
lease in one slot.

- ``P{u:<user>}`` — registry (engines/registry/redis.py): terminal -> ``node\\tconn_id\\tincarnation``.
- ``P{node:<id>}:users:<inc>`` — users a process of a node registered, swept when it dies;
  ``P{nodes}:holders`` — the ``node\\tincarnation`` of every process with registrations.
- ``P{node:<id>}:alive`` — liveness of a node (engines/cluster/redis.py).
- ``P{node:<id>}:q`` — a node's queue, a Stream with one consumer group (engines/routing/redis.py).
- ``P{u:<user>}:bg`` — terminals in the background, terminal -> lapse ms (engines/attention/redis.py).
- ``P{nodes}`` — set of node ids that have run; ``P{nodes}:load`` — hash node id -> its last ``NodeLoad``;
  ``P{nodes}:numbers`` — counter that leases node numbers (engines/cluster/redis.py).
"""

from __future__ import annotations

#: The consumer group every node's queue is read with.
QUEUE_GROUP = "nodes"


class Keys:
    def __init__(self, prefix: str = "hubbub:") -> None:
        self.prefix = prefix

    def user(self, user_id: int) -> str:
        return f"{self.prefix}{{u:{user_id}}}"

    def alive(self, node: str) -> str:
        return f"{self.prefix}{{node:{node}}}:alive"

    def queue(self, node: str) -> str:
        return f"{self.prefix}{{node:{node}}}:q"

    def nodes(self) -> str:
        """The set of node ids that have run (dead ones are skipped by their liveness key): no KEYS scans."""
        return f"{self.prefix}{{nodes}}"

    def load(self) -> str:
        """Hash: node id -> its last load report (``NodeLoad``, msgpack)."""
        return f"{self.prefix}{{nodes}}:load"

    def node_users(self, node: str, incarnation: str) -> str:
        return f"{self.prefix}{{node:{node}}}:users:{incarnation}"

    def holders(self) -> str:
        return f"{self.prefix}{{nodes}}:holders"

    def numbers(self) -> str:
        return f"{self.prefix}{{nodes}}:numbers"

    def background(self, user_id: int) -> str:
        """Hash: the user's terminals in the background -> when the mark lapses (ms)."""
        return f"{self.prefix}{{u:{user_id}}}:bg"
