"""Shared fixtures: a real Hubbub node on a free port, and logged-in SDK clients.

Timeouts scale with HUBBUB_TEST_TIMEOUT_FACTOR (a slow CI machine sets it above 1).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hubbub.client import HubbubClient
from hubbub.config import Config
from hubbub.node import Node

TIMEOUT_FACTOR = float(os.environ.get("HUBBUB_TEST_TIMEOUT_FACTOR", "1"))
PASSWORD = "correct-horse-battery"
_names = itertools.count(1)


def test_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "data_dir": str(tmp_path / "data"),
        "argon2_time_cost": 1,
        "argon2_memory_kib": 256,
        "login_burst": 1000,
        "send_burst": 2000,
        "node_id": "test",
    }
    values.update(overrides)
    return Config(**values)


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Node]]]:
    nodes: list[Node] = []

    async def start(**overrides: Any) -> Node:
        node = Node(test_config(tmp_path, **overrides))
        await node.start()
        nodes.append(node)
        return node

    yield start  # type: ignore[misc]
    for node in nodes:
        await node.stop()


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[Node]]) -> Node:
    return await make_node()


def base_url(node: Node) -> str:
    return f"http://127.0.0.1:{node.port}"


@pytest.fixture
async def make_client(node: Node) -> AsyncIterator[Callable[..., Awaitable[HubbubClient]]]:
    clients: list[HubbubClient] = []

    async def create(
        name: str | None = None,
        *,
        connect: bool = True,
        terminal: str = "web",
        register: bool = True,
        device: str | None = None,
    ) -> HubbubClient:
        client = HubbubClient(base_url(node), terminal=terminal, device=device)
        clients.append(client)
        username = name or f"user{next(_names)}"
        if register:
            await client.register(username, PASSWORD)
        else:
            await client.login(username, PASSWORD)
        if connect:
            await client.connect()
        return client

    yield create
    for client in clients:
        await client.close()


async def friends(*clients: HubbubClient) -> None:
    """Make every pair of the given clients friends."""
    for i, a in enumerate(clients):
        for b in clients[i + 1 :]:
            await a.befriend(b)
