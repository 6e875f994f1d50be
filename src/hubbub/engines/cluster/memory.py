"""A cluster of one: this node is the only member, always alive, and its backend is its own process."""

from __future__ import annotations

from hubbub.engines.cluster.base import Cluster, NodeLoad


class MemoryCluster(Cluster):
    def __init__(self, node_id: str = "local") -> None:
        self.node_id = node_id
        self._load: NodeLoad | None = None

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        self._load = None

    async def is_alive(self, node: str) -> bool:
        return node == self.node_id

    async def live_nodes(self) -> list[str]:
        return [self.node_id]

    async def report_load(self, load: NodeLoad) -> None:
        self._load = load

    async def nodes(self) -> list[NodeLoad]:
        return [self._load] if self._load is not None else []
