"""A real HTTP receiver for outgoing webhooks (and the before-send hook) on loopback, for the tests.

It checks each delivery's signature the way docs/integrations.md tells receivers to, records what came, and
answers with the status its ``plan`` says (for retry and disable tests).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hubbub.services.webhooks import verify
from tests import servers


class Receiver:
    def __init__(self, secret: str = "") -> None:
        #: The webhook's secret, once known (signatures are checked when it is set).
        self.secret = secret
        self.received: list[dict[str, Any]] = []
        self.bad_signatures = 0
        #: Statuses to answer, in order; then 200.
        self.plan: list[int] = []
        #: Custom handler (the before-send hook tests): request JSON -> response JSON.
        self.respond: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]] | None = None
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = servers.free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        data = json.loads(body)
        if self.respond is not None:
            return web.json_response(await self.respond(data))
        if self.secret and not verify(
            self.secret,
            request.headers.get("Hubbub-Timestamp", ""),
            request.headers.get("Hubbub-Signature", ""),
            body,
            300,
        ):
            self.bad_signatures += 1
            return web.Response(status=401)
        status = self.plan.pop(0) if self.plan else 200
        if status == 200:
            data["_headers"] = dict(request.headers)
            data["_arrived_ms"] = int(time.time() * 1000)
            self.received.append(data)
            self._arrived.set()
        return web.Response(status=status, text="ok" if status == 200 else "try later")

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        async def enough() -> None:
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()

        await asyncio.wait_for(enough(), timeout)
        return self.received
