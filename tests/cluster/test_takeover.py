"""Two logins of one terminal at the same moment on two nodes (issue 12, item 4): exactly one survives.

The registry entry is replaced atomically in Redis (one script), and the replaced connection is closed
(4409) on its node even while it is still registering, so neither order of arrival leaves two.
"""

from __future__ import annotations

import uuid

import aiohttp
import pytest

from hubbub.client import HubbubClient
from tests.cluster.conftest import Cluster
from tests.e2e.test_gateway import assert_one_login_survives

pytestmark = pytest.mark.cluster

PASSWORD = "correct-horse-battery"


async def test_two_logins_of_one_terminal_on_two_nodes_leave_exactly_one(cluster: Cluster) -> None:
    owner, friend = HubbubClient(cluster.url(0)), HubbubClient(cluster.url(2))
    try:
        await owner.register(f"tk{uuid.uuid4().hex[:8]}", PASSWORD)
        await friend.register(f"tf{uuid.uuid4().hex[:8]}", PASSWORD)
        await friend.connect()
        await owner.befriend(friend)
        urls = [cluster.url(i).replace("http", "ws") + "/ws" for i in (0, 1)]
        async with aiohttp.ClientSession() as http:
            for trial in range(8):
                a, b = urls if trial % 2 == 0 else urls[::-1]
                await assert_one_login_survives(http, a, b, owner, friend)
    finally:
        await owner.close()
        await friend.close()
