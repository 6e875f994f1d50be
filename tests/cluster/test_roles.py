"""What each role starts in a cluster (hubbub/root.py): a node without connections renews no registry
entries and sweeps nothing, but it is a member (liveness, load) and reads its queue (broadcasts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hubbub.engines.cluster.redis import RedisCluster
from hubbub.engines.registry.redis import RedisRegistry
from hubbub.engines.routing.redis import RedisRouting
from hubbub.node import Node
from tests import servers
from tests.conftest import test_config as node_config

pytestmark = pytest.mark.cluster


@pytest.fixture
def redis_server() -> Iterator[servers.RedisServer]:
    server = servers.RedisServer().start()
    yield server
    server.stop()


async def test_platform_and_gateway_nodes(tmp_path: Path, redis_server: servers.RedisServer) -> None:
    secret = "roles-test-" + "x" * 32
    nodes = []
    try:
        for role in ("gateway", "platform"):
            node = Node(
                node_config(tmp_path, redis=redis_server.url, jwt_secret=secret, role=role, node_id=role)
            )
            await node.start()
            nodes.append(node)
        gateway, platform = nodes
        for node in nodes:
            assert isinstance(node.routing, RedisRouting) and node.routing._consumer is not None
            assert isinstance(node.cluster, RedisCluster) and all(loop.running for loop in node.cluster._loops)
        assert isinstance(gateway.registry, RedisRegistry) and gateway.registry._sweeper.running
        assert isinstance(platform.registry, RedisRegistry) and not platform.registry._sweeper.running
        assert gateway.hub.sweeping and not platform.hub.sweeping
        assert await gateway.cluster.live_nodes() == ["gateway", "platform"]
    finally:
        for node in nodes:
            await node.stop()
