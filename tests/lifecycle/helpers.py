"""Small helpers shared by the lifecycle tests."""

from __future__ import annotations

import itertools
from typing import Any

from hubbub.client import HubbubClient
from hubbub.node import Node
from tests.conftest import PASSWORD, base_url

_names = itertools.count(1)


async def user(node: Node, name: str = "", connect: bool = True) -> HubbubClient:
    client = HubbubClient(base_url(node))
    await client.register(f"{name or 'user'}{next(_names)}", PASSWORD)
    if connect:
        await client.connect()
    return client


async def upload(client: HubbubClient, data: bytes, name: str = "notes.txt") -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with client.http.post(
        f"{client.base_url}/api/v1/uploads", data=data, params={"kind": "file", "name": name}, headers=headers
    ) as resp:
        assert resp.status == 201, await resp.text()
        return dict(await resp.json())


async def raw(
    client: HubbubClient | None, node: Node, method: str, path: str, **kwargs: Any
) -> tuple[int, Any]:
    """A request whose refusal is the point: (status, JSON or bytes)."""
    import aiohttp

    headers = {"Authorization": f"Bearer {client.access_token}"} if client is not None else {}
    async with aiohttp.ClientSession() as http:
        async with http.request(method, base_url(node) + path, headers=headers, **kwargs) as resp:
            body = await resp.read()
            if resp.content_type == "application/json":
                import json

                return resp.status, json.loads(body) if body else None
            return resp.status, body
