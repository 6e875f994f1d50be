"""Abuse limits at the HTTP edge (docs/security.md, "Abuse limits").

- **Per-IP token buckets** for the routes an attacker can drive without an account or cheaply with one:
  login (password guessing spread over many usernames), register (account farming) and uploads; plus a
  **per-user** bucket for uploads, and the per-user **read** bucket for every authenticated ``GET`` (shared
  with the WebSocket's reads: services/limits.py). Per-user limits on sends, logins per (username, address),
  password changes per session and user, and friend requests live in the services, next to the rule they
  protect; the middleware leaves the client's address in ``request[CLIENT_IP]`` for them.
- **WebSocket connections per IP**: counted from before the upgrade, refused with HTTP 429 ``rate_limited``
  so a flood of sockets never costs a handshake or a session. (Per-user caps are applied at ``auth``, in
  the gateway, which knows the user: close 4530.)
- **Slow bodies**: a JSON body must arrive within ``http_body_timeout_s`` (408 ``timeout``). A client
  trickling its request *headers* is cut off by aiohttp's keep-alive timer (``http_keepalive_s``, set on the
  server in node.py), which starts when the connection opens and is not reset by partial headers.

The client address is the socket's peer, or, when that peer is one of ``trusted_proxies``, the last
``X-Forwarded-For`` entry that is not itself a trusted proxy (nginx appends the address it saw).
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.gateway.transport import WS_RELEASE
from hubbub.platform.bearer import bearer_token
from hubbub.services.auth import AuthService
from hubbub.services.limits import enforce, enforce_reads

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Routes that carry a JSON body read in one go (uploads stream theirs and are bounded per chunk instead).
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_UPLOADS = "/api/v1/uploads"
#: Where the middleware leaves the client's address for the routes (the login limit is keyed on it).
CLIENT_IP: Any = (
    web.RequestKey("hubbub_client_ip", str)
    if hasattr(web, "RequestKey")
    else "hubbub_client_ip"  # aiohttp < 3.13
)


def _networks(spec: str) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


class EdgeLimits:
    """Per-IP and per-user buckets for the HTTP API, and the per-IP WebSocket count of this node."""

    def __init__(self, config: Config, limiter: RateLimiter, auth: AuthService) -> None:
        self.config = config
        self.limiter = limiter
        self.auth = auth
        self.exempt = _networks(config.ip_limit_exempt)
        self.proxies = _networks(config.trusted_proxies)
        #: Live WebSocket connections per client IP on this node.
        self.sockets: dict[str, int] = {}
        c = config
        # (method, path) -> (bucket name, tokens per second, burst)
        self.ip_rules: dict[tuple[str, str], tuple[str, float, int]] = {
            ("POST", "/api/v1/auth/login"): ("login-ip", c.login_ip_per_minute / 60, c.login_ip_burst),
            ("POST", "/api/v1/auth/register"): (
                "register-ip",
                c.register_ip_per_hour / 3600,
                c.register_ip_burst,
            ),
            ("POST", _UPLOADS): ("upload-ip", c.upload_ip_per_minute / 60, c.upload_ip_burst),
        }

    # -- who is calling ---------------------------------------------------------------------------
    def client_ip(self, request: web.Request) -> str:
        peer = request.remote or ""
        if not self.proxies or not self._in(peer, self.proxies):
            return peer
        for hop in reversed(request.headers.get("X-Forwarded-For", "").split(",")):
            hop = hop.strip()
            if hop and not self._in(hop, self.proxies):
                return hop
        return peer

    @staticmethod
    def _in(address: str, networks: tuple[Network, ...]) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in networks)

    def exempt_ip(self, ip: str) -> bool:
        return bool(self.exempt) and self._in(ip, self.exempt)

    # -- HTTP -------------------------------------------------------------------------------------
    async def check_request(self, request: web.Request) -> None:
        ip = request[CLIENT_IP] = self.client_ip(request)
        rule = self.ip_rules.get((request.method, request.path))
        if rule is not None:
            if not self.exempt_ip(ip):
                name, rate, burst = rule
                await enforce(self.limiter, f"{name}:{ip}", rate, burst)
        if request.method == "POST" and request.path == _UPLOADS:
            user_id = self._user_of(request)
            if user_id is not None:
                c = self.config
                await enforce(self.limiter, f"upload:{user_id}", c.upload_per_minute / 60, c.upload_burst)
        elif request.method == "GET":
            user_id = self._user_of(request)
            if user_id is not None:
                await enforce_reads(self.limiter, self.config, user_id)

    def _user_of(self, request: web.Request) -> int | None:
        """The caller's id from the token's signature alone (the route checks the session itself). Downloads
        may carry the token as ``?access_token=`` (for ``<img>``)."""
        token = bearer_token(request, query=request.path.startswith(_UPLOADS))
        if not token:
            return None
        try:
            return self.auth.decode_access(token).user_id
        except HubbubError:
            return None

    async def read_body(self, request: web.Request) -> None:
        """Read a JSON body now, against a deadline; the route's later ``read()`` gets the cached bytes."""
        if request.method not in _BODY_METHODS or request.path == _UPLOADS or not request.body_exists:
            return
        try:
            async with asyncio.timeout(self.config.http_body_timeout_s):
                await request.read()
        except TimeoutError as exc:
            raise HubbubError(Code.TIMEOUT, "the request body did not arrive in time") from exc

    def middleware(self) -> Any:
        @web.middleware
        async def limits(request: web.Request, handler: Handler) -> web.StreamResponse:
            if request.path.startswith("/api/"):
                await self.check_request(request)
                await self.read_body(request)
            return await handler(request)

        return limits

    # -- WebSocket --------------------------------------------------------------------------------
    def guard_ws(self, handle: Handler) -> Handler:
        """Wrap the /ws endpoint: count live sockets per IP, refuse over the cap before upgrading."""

        async def guarded(request: web.Request) -> web.StreamResponse:
            ip = self.client_ip(request)
            held = self.sockets.get(ip, 0)
            if held >= self.config.max_ws_per_ip and not self.exempt_ip(ip):
                raise HubbubError(
                    Code.RATE_LIMITED,
                    f"at most {self.config.max_ws_per_ip} connections per address",
                    retry_after=5,
                )
            self.sockets[ip] = held + 1
            released = False

            def release() -> None:
                nonlocal released
                if released:
                    return
                released = True
                left = self.sockets[ip] - 1
                if left:
                    self.sockets[ip] = left
                else:
                    del self.sockets[ip]

            # A handler that keeps the socket past its return (gateway/transport.py) takes the release.
            request[WS_RELEASE] = release
            try:
                return await handle(request)
            finally:
                if request.get(WS_RELEASE) is release:
                    release()

        return guarded


def server_options(config: Config) -> dict[str, Any]:
    """Keyword arguments for aiohttp's ``AppRunner``: the connection-level timeouts (slow loris)."""
    return {"keepalive_timeout": config.http_keepalive_s}
