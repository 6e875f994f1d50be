"""One structured log line per HTTP request (docs/operations.md, "Logs").

Fields: method, route (the declared path, e.g. ``/api/v1/users/{id}``), path (no query string: download URLs
may carry tokens there), status, error code, user id once authenticated, duration in ms. Never headers or
bodies. API requests log at info; health checks, metrics scrapes and static files at debug, so a scraper
polling every few seconds does not drown the log. ``/ws`` is logged by the gateway when the connection ends.

A request aiohttp's HTTP parser refuses (``Content-Length: abc``, a header line too long) never reaches the
middleware: aiohttp answers 400 itself and logs a traceback at ERROR. Anyone on the internet can send one, so
``quiet_parser_errors`` turns that into one WARNING line ``http_bad_request`` with the peer, the status and
the parser's error class, and not its message: the message may quote the offending header line, which can be
an ``Authorization`` header.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

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


class _ParserRejection(logging.Filter):
    """On ``aiohttp.server``: a parser refusal becomes one WARNING line; every other record passes as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else None
        record.msg, record.args = "http_bad_request", ()
        record.levelno, record.levelname = logging.WARNING, "WARNING"
        record.exc_info, record.exc_text = None, None
        record.peer, record.status, record.reason = peer, exc.code, type(exc).__name__
        return logging.getLogger(record.name).isEnabledFor(logging.WARNING)


_PARSER_FILTER = _ParserRejection()


def quiet_parser_errors() -> None:
    """Install the filter (idempotent: ``addFilter`` keeps one copy of the same filter)."""
    logging.getLogger("aiohttp.server").addFilter(_PARSER_FILTER)
