"""The aiohttp application: API routes, /ws, /openapi.json, /healthz and the web client at /."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hubbub.core.errors import Code, HubbubError
from hubbub.gateway.server import Gateway
from hubbub.metrics import NodeMetrics
from hubbub.platform import (  # noqa: F401
    openapi,
    routes_accounts,
    routes_admin,
    routes_friends,
    routes_groups,
    routes_media,
    routes_messages,
)
from hubbub.platform.access_log import USER_KEY, access_log
from hubbub.platform.limits import EdgeLimits
from hubbub.platform.routing import ROUTES, Ctx, Route, bearer, decode_body, ids_in_path
from hubbub.services.container import Services

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


log = logging.getLogger(__name__)

WEBUI_DIR = Path(__file__).resolve().parent.parent / "webui" / "dist"
_encode = msgspec.json.encode


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json")


def error_response(exc: HubbubError) -> web.Response:
    return json_response({"error": exc.to_dict()}, exc.http_status)


@web.middleware
async def errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except HubbubError as exc:
        return error_response(exc)
    except web.HTTPRequestEntityTooLarge:
        return error_response(HubbubError(Code.TOO_LARGE, "request body too large"))
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith("/api/"):
            code = {404: Code.NOT_FOUND, 405: Code.METHOD_NOT_ALLOWED}.get(exc.status, Code.BAD_REQUEST)
            response = error_response(HubbubError(code, exc.reason))
            if "Allow" in exc.headers:
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(HubbubError(Code.INTERNAL, "internal error"))


def count_errors(metrics: NodeMetrics) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if response.status >= 400 and response.content_type == "application/json":
            body = getattr(response, "body", None)
            if isinstance(body, bytes) and body.startswith(b'{"error":'):
                code = msgspec.json.decode(body).get("error", {}).get("code", "unknown")
                metrics.errors[str(code)] += 1
        return response

    return middleware


def _endpoint(services: Services, r: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def endpoint(request: web.Request) -> web.StreamResponse:
        principal = await services.auth.authenticate(bearer(request)) if r.auth else None
        if principal is not None:
            request[USER_KEY] = principal.user_id
        if principal is not None and r.tag == "admin":
            # Before the body is read: a non-admin learns nothing of these routes, not even their schemas
            # (a 422 for a bad body would tell them the route takes one). Found by the authorization matrix.
            await services.admin.require_admin(principal.user_id)
        ids_in_path(request)  # a bad id is invalid_id whatever the body (read next) holds
        body = await decode_body(request, r.body) if r.body is not None else None
        result = await r.handler(Ctx(services, request, principal, body))
        if isinstance(result, web.StreamResponse):  # a download, already streamed
            return result
        if r.status == 204:
            return web.Response(status=204)
        return json_response(result, r.status)

    endpoint.__name__ = r.handler.__name__
    return endpoint


def _digits_only(path: str) -> str:
    """Integer path parameters match only a segment with a digit in it, so ``DELETE /api/v1/friends/requests``
    is an unknown method (405), not a friend removal of user "requests" (found by schemathesis). A segment
    with a digit that is not an id's one spelling ("007", "+7", "７") reaches ``Ctx.path_int``: ``invalid_id``.
    One with no digit at all names no route: ``not_found``."""

    def param(match: re.Match[str]) -> str:
        name = match.group(1)
        return match.group(0) if name in ("conv", "upload_id") else f"{{{name}:[^/]*\\d[^/]*}}"

    return re.sub(r"{(\w+)}", param, path)


def build_app(services: Services, gateway: Gateway | None, metrics: NodeMetrics) -> web.Application:
    edge = EdgeLimits(services.config, services.auth.limiter, services.auth)
    app = web.Application(
        middlewares=[count_errors(metrics), errors, edge.middleware()],
        client_max_size=services.config.max_body_bytes,
    )
    serve_api = services.config.role in ("all", "platform")
    for r in ROUTES if serve_api else ():
        app.router.add_route(r.method, _digits_only(r.path), _endpoint(services, r))
    spec = openapi.build(ROUTES)

    async def openapi_json(_request: web.Request) -> web.Response:
        return json_response(spec)

    app.router.add_get("/openapi.json", openapi_json)
    app.middlewares.insert(0, access_log())  # outermost: sees every response, errors included

    async def livez(_request: web.Request) -> web.Response:
        return json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        """Ready only when storage (and, in a cluster, Redis) answer: load balancers route by this."""
        try:
            await services.storage.ping()
            await services.broker.ping()
        except HubbubError as exc:
            return error_response(exc)
        if gateway is not None and not gateway.accepting:
            return error_response(HubbubError(Code.UNAVAILABLE, "draining"))
        return json_response({"status": "ok", "node": services.config.effective_node_id})

    async def metrics_endpoint(_request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    app.router.add_get("/healthz", readyz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics_endpoint)
    if gateway is not None and services.config.role in ("all", "gateway"):
        app.router.add_get("/ws", edge.guard_ws(gateway.handle))
    if serve_api:
        _add_webui(app)
    return app


def _add_webui(app: web.Application) -> None:
    """Serve the built web client; any other non-API path gets index.html (client-side routing)."""
    index = WEBUI_DIR / "index.html"

    async def spa(request: web.Request) -> web.StreamResponse:
        path = request.match_info.get("path", "")
        if path.startswith("api/") or path == "ws":
            raise HubbubError(Code.NOT_FOUND, "no such route")
        candidate = (WEBUI_DIR / path).resolve()
        if path and candidate.is_file() and WEBUI_DIR.resolve() in candidate.parents:
            response = web.FileResponse(candidate)
            if "/assets/" in str(candidate):
                response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
            return response
        if index.is_file():
            return web.FileResponse(index, headers={"Cache-Control": "no-cache"})
        return web.Response(
            text="<!doctype html><title>Hubbub</title><p>Hubbub is running. The web client is not built: "
            "run <code>npm --prefix web ci && npm --prefix web run build</code>.</p>",
            content_type="text/html",
        )

    # Not under /api/: a GET catch-all there would make every API path "allow" GET (405 Allow headers).
    app.router.add_get(r"/{path:(?!api/).*}", spa)
