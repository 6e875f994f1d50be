"""The aiohttp application: API routes, /ws, /openapi.json, /healthz and the web client at /."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.gateway.server import Gateway
from hubbub.metrics import NodeMetrics
from hubbub.platform import (  # noqa: F401
    openapi,
    routes_access,
    routes_accounts,
    routes_actions,
    routes_admin,
    routes_calls,
    routes_friends,
    routes_groups,
    routes_lifecycle,
    routes_media,
    routes_messages,
    routes_search,
)
from hubbub.platform.access_log import USER_KEY, access_log, quiet_parser_errors
from hubbub.platform.bearer import bearer, bearer_token
from hubbub.platform.limits import EdgeLimits
from hubbub.platform.routes_admin import METRICS_KEY
from hubbub.platform.routing import ROUTES, Ctx, Route, decode_body, ids_in_path
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


def web_app_csp(host: str) -> str:
    """The web client's Content-Security-Policy: its own scripts and styles only (the built bundle has no
    inline script, and Vue sets styles through the CSSOM, which CSP allows), images from uploads plus
    ``data:``/``blob:`` (the favicon, previews of a file being sent), voice and video from uploads and
    ``blob:`` (a recording played back before sending), and connections to this origin's API and WebSocket.
    Nothing may frame it, and no ``<base>``, plugin or form may point elsewhere."""
    return (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        f"media-src 'self' blob:; connect-src 'self' ws://{host} wss://{host}; font-src 'self'; "
        "manifest-src 'self'; base-uri 'none'; form-action 'self'; object-src 'none'; frame-ancestors 'none'"
    )


#: On every response, the API's included (docs/security.md, "Headers").
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # The web client records voice and video (and nothing else).
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=(), payment=(), usb=()",
}
#: Anything else than the web client's page (JSON, the OpenAPI document, metrics) is never a document.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
#: The Host header goes into the web client's CSP: only a plain host[:port] does.
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def page_csp(request: web.Request) -> str:
    """The web client's policy for this request's origin (a Host header that is not a plain host does not
    reach the header)."""
    return web_app_csp(request.host if _HOST.fullmatch(request.host) else "invalid.invalid")


async def security_headers(_request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: runs for every response (files, streams, errors, the WebSocket upgrade).
    A route that set its own policy keeps it: the web client's page, and a download's sandbox."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers.setdefault("Content-Security-Policy", API_CSP)


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
        return match.group(0) if name in ("conv", "upload_id", "export_id", "code") else f"{{{name}:[^/]*\\d[^/]*}}"

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
    app[METRICS_KEY] = metrics  # the admin dashboard reads the same providers as /metrics

    async def openapi_json(_request: web.Request) -> web.Response:
        return json_response(spec)

    app.router.add_get("/openapi.json", openapi_json)
    app.middlewares.insert(0, access_log())  # outermost: sees every response, errors included
    quiet_parser_errors()  # requests aiohttp refuses before any middleware: one line, no traceback
    app.on_response_prepare.append(security_headers)

    async def livez(_request: web.Request) -> web.Response:
        return json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        """Ready only when storage (and, in a cluster, Redis) answer: load balancers route by this."""
        try:
            await services.storage.ping()
            await services.cluster.ping()
        except HubbubError as exc:
            return error_response(exc)
        if gateway is not None and not gateway.accepting:
            return error_response(HubbubError(Code.UNAVAILABLE, "draining"))
        return json_response({"status": "ok", "node": services.config.effective_node_id})

    app.router.add_get("/healthz", readyz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/livez", livez)
    if not services.config.metrics_listen:
        app.router.add_get("/metrics", metrics_handler(services.config, metrics, loopback_only=True))
    else:  # served on its own listener; here it is nothing (not the web client's catch-all page)
        app.router.add_get("/metrics", _not_here)
    if gateway is not None and services.config.role in ("all", "gateway"):
        app.router.add_get("/ws", edge.guard_ws(gateway.handle))
    if serve_api:
        _add_webui(app)
    return app


def metrics_handler(config: Config, metrics: NodeMetrics, *, loopback_only: bool) -> Handler:
    """``GET /metrics``, guarded (config.py, ``metrics_*``): the bearer token when one is set; otherwise, on
    the main port, only a loopback peer that is not a proxy forwarding someone else."""
    token = config.metrics_token.encode()

    async def serve_metrics(request: web.Request) -> web.Response:
        if token:
            if not hmac.compare_digest(bearer_token(request).encode(), token):
                raise HubbubError(Code.UNAUTHORIZED, "metrics need the bearer token (HUBBUB_METRICS_TOKEN)")
        elif loopback_only and not _local_caller(request):
            raise HubbubError(
                Code.FORBIDDEN,
                "metrics are served to this host only; set HUBBUB_METRICS_TOKEN or HUBBUB_METRICS_LISTEN",
            )
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return serve_metrics


async def _not_here(_request: web.Request) -> web.Response:
    raise HubbubError(Code.NOT_FOUND, "no such route")


def _local_caller(request: web.Request) -> bool:
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False  # a proxy on this host, forwarding someone who is not
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def build_metrics_app(config: Config, metrics: NodeMetrics) -> web.Application:
    """The listener of ``metrics_listen``: ``/metrics`` only (with the token if one is set)."""
    app = web.Application(middlewares=[errors])
    app.router.add_get("/metrics", metrics_handler(config, metrics, loopback_only=False))
    app.on_response_prepare.append(security_headers)
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
        # The page's policy is set here, not by content type: a revalidated page comes back as a 304 whose
        # headers replace the cached ones, and it must carry the same policy.
        if index.is_file():
            return web.FileResponse(
                index, headers={"Cache-Control": "no-cache", "Content-Security-Policy": page_csp(request)}
            )
        return web.Response(
            text="<!doctype html><title>Hubbub</title><p>Hubbub is running. The web client is not built: "
            "run <code>npm --prefix web ci && npm --prefix web run build</code>.</p>",
            content_type="text/html",
            headers={"Content-Security-Policy": page_csp(request)},
        )

    # Not under /api/: a GET catch-all there would make every API path "allow" GET (405 Allow headers).
    app.router.add_get(r"/{path:(?!api/).*}", spa)
