"""A small, real OpenID Connect provider on loopback for the single sign-on tests, built with Authlib's
libraries (joserfc keys and JWTs, Authlib's PKCE): discovery, JWKS, an authorization endpoint that signs in
``subject`` at once, and a token endpoint that checks the client, the code, the redirect URI and the PKCE
verifier before it issues an ID token.

``sabotage`` makes the next ID tokens bad in one way (the tests check each is refused): ``bad_signature``
(signed by another key under the published key id), ``wrong_audience``, ``expired``, ``wrong_nonce``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests import servers

CLIENT_ID = "hubbub-test"
CLIENT_SECRET = "provider-secret"


class Provider:
    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig", "alg": "RS256"})
        self.subject = "alice-sub-1"
        self.claims: dict[str, Any] = {"preferred_username": "alice.sso", "name": "Alice SSO"}
        self.sabotage = ""
        self._codes: dict[str, dict[str, Any]] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> Provider:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/authorize", self._authorize)
        app.router.add_post("/token", self._token)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        self.port = servers.free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _jwks(self, _request: web.Request) -> web.Response:
        return web.json_response({"keys": [self.key.as_dict(private=False)]})

    async def _authorize(self, request: web.Request) -> web.Response:
        q = request.query
        if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
            return web.json_response({"error": "unauthorized_client"}, status=400)
        if q.get("code_challenge_method") != "S256" or not q.get("code_challenge"):
            return web.json_response(
                {"error": "invalid_request", "error_description": "PKCE required"}, status=400
            )
        code = secrets.token_urlsafe(16)
        self._codes[code] = {
            "challenge": q["code_challenge"],
            "redirect_uri": q["redirect_uri"],
            "nonce": q.get("nonce", ""),
            "subject": self.subject,
        }
        raise web.HTTPFound(q["redirect_uri"] + "?" + urlencode({"code": code, "state": q["state"]}))

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        grant = self._codes.pop(str(form.get("code", "")), None)  # a code is used once
        if form.get("client_id") != CLIENT_ID or form.get("client_secret") != CLIENT_SECRET:
            return web.json_response({"error": "invalid_client"}, status=401)
        if grant is None or form.get("redirect_uri") != grant["redirect_uri"]:
            return web.json_response({"error": "invalid_grant"}, status=400)
        if create_s256_code_challenge(str(form.get("code_verifier", ""))) != grant["challenge"]:
            return web.json_response({"error": "invalid_grant", "error_description": "PKCE"}, status=400)
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": grant["subject"],
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + 300,
            "nonce": grant["nonce"],
            **self.claims,
        }
        key = self.key
        if self.sabotage == "bad_signature":
            key = RSAKey.generate_key(2048, parameters={"kid": "k1", "alg": "RS256"})
        elif self.sabotage == "wrong_audience":
            claims["aud"] = "someone-else"
        elif self.sabotage == "expired":
            claims["iat"], claims["exp"] = now - 3600, now - 600
        elif self.sabotage == "wrong_nonce":
            claims["nonce"] = "not-the-nonce"
        id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, key)
        return web.json_response(
            {
                "access_token": secrets.token_urlsafe(16),
                "token_type": "Bearer",
                "expires_in": 300,
                "id_token": id_token,
            }
        )


@contextlib.contextmanager
def in_thread(*servers_: Any) -> Iterator[None]:
    """Run test servers (anything with async ``start``/``stop``: a Provider, a webhook Receiver) on an event
    loop of their own, for synchronous tests and module-scoped fixtures."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(step: Callable[[], Awaitable[object]]) -> None:
        asyncio.run_coroutine_threadsafe(step(), loop).result(10)  # type: ignore[arg-type]

    try:
        for server in servers_:
            run(server.start)
        yield
    finally:
        for server in servers_:
            run(server.stop)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
