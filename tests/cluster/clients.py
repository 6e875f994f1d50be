"""Clients of a running cluster for the cluster tests, registered on the node a test names and closed after."""

from __future__ import annotations

import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

from hubbub.client import HubbubClient
from tests.conftest import PASSWORD

MakeClient = Callable[..., Awaitable[HubbubClient]]
_names = itertools.count(1)


@contextlib.asynccontextmanager
async def client_maker(address: Callable[[int], str | list[str]], prefix: str) -> AsyncIterator[MakeClient]:
    """``make(node)`` registers a new user through node ``node`` (``address(node)``: its URL, or URLs to fail
    over along) and connects it; ``like=client`` is another terminal of that client's user (the same tokens),
    e.g. on another node; ``connect=False`` leaves the socket for the test to open."""
    clients: list[HubbubClient] = []

    async def create(
        node: int,
        *,
        terminal: str = "web",
        like: HubbubClient | None = None,
        connect: bool = True,
        sync: bool = True,
    ) -> HubbubClient:
        client = HubbubClient(address(node), terminal=terminal)
        clients.append(client)
        if like is None:
            await client.register(f"{prefix}{uuid.uuid4().hex[:6]}{next(_names)}", PASSWORD)
        else:
            client.user, client.access_token, client.refresh_token = (
                like.user,
                like.access_token,
                like.refresh_token,
            )
        if connect:
            await client.connect(sync=sync)
        return client

    try:
        yield create
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
