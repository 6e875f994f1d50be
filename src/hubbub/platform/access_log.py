"""One structured log line per HTTP request (docs/operations.md, "Logs").

Fields: method, route (the declared path, e.g. ``/api/v1/users/{id}``), path (no query string: download URLs
may carry tokens there), status, error code, user id once authenticated, duration in ms. Never headers or
bodies. API requests log at info; health checks, metrics scrapes and static files at debug, so a scraper
polling every few seconds does not drown the log. ``/ws`` is logged by the gateway when the connection ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

log = logging.getLogger("hubbub.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Set by the route wrapper once the caller is authenticated.
USER_KEY: Any = (
    web.RequestKey("hubbub_user_id", int) if hasattr(web, "RequestKey") else "hubbub_user_id"  # aiohttp < 3.13
)


def _error_code(response: web.StreamResponse) -> str | None:
    body = getattr(response, "body", None)
    if response.status >= 400 and isinstance(body, bytes) and body.startswith(b'{"error":'):
        try:
            return str(msgspec.json.decode(body)["error"]["code"])
        except (msgspec.DecodeError, KeyError, TypeError):
            return None
    return None


def access_log() -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path == "/ws":
            return await handler(request)
        started = time.perf_counter()
        status = 500
        code: str | None = None
        try:
            response = await handler(request)
            status = response.status
            code = _error_code(response)
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            level = logging.INFO if request.path.startswith("/api/") else logging.DEBUG
            if log.isEnabledFor(level):
                resource = request.match_info.route.resource
                log.log(
                    level,
                    "http_request",
                    extra={
                        "method": request.method,
                        "route": resource.canonical if resource is not None else None,
                        "path": request.path,
                        "status": status,
                        "code": code,
                        "user": request.get(USER_KEY),
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )

    return middleware
