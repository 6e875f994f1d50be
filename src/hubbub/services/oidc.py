"""Single sign-on with OpenID Connect (docs/integrations.md, "OpenID Connect").

Authorization Code with PKCE (S256), with Authlib's PKCE and token helpers and joserfc (Authlib's JOSE
library) for the ID token: its signature against the provider's JWKS, then issuer, audience (our client id),
expiry and the nonce this sign-in sent. Each sign-in's ``state`` is stored and taken once: a replayed callback
is refused. Accounts are linked by (issuer, subject), never by e-mail or name (both can change or be reused);
an unknown subject gets a new account only with ``oidc_auto_create`` and only if the registration mode lets
new accounts in (services/access.py).

The callback does not put tokens in a URL: it redirects the browser to the web client with a one-time
``ticket`` (valid two minutes), which the client exchanges for tokens with a POST.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Any

import aiohttp
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Tokens
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_integrations import OidcFlow
from hubbub.engines.storage.sql_integrations import NO_PASSWORD
from hubbub.services.auth import AuthService

#: A sign-in must come back within this long.
FLOW_TTL_MS = 10 * 60 * 1000
#: The web client has this long to exchange its ticket.
TICKET_TTL_MS = 2 * 60 * 1000
#: Signing algorithms accepted for ID tokens (never "none", never HS* with a public key).
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256"]
_NOT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def refused(why: str) -> HubbubError:
    return HubbubError(Code.UNAUTHORIZED, f"single sign-on refused: {why}")


class OidcService:
    def __init__(self, config: Config, storage: Storage, auth: AuthService) -> None:
        self.config = config
        self.storage = storage
        self.auth = auth
        self.issuer = config.oidc_issuer.rstrip("/")
        self._meta: dict[str, Any] | None = None
        self._keys: KeySet | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.issuer and self.config.oidc_client_id)

    def providers(self) -> list[dict[str, str]]:
        """What the login page shows: one button per provider."""
        if not self.enabled:
            return []
        return [{"id": "oidc", "name": self.config.oidc_name, "start": "/api/v1/auth/oidc/start"}]

    # -- the flow ----------------------------------------------------------------------------------
    async def start(self, redirect_uri: str) -> str:
        """The provider's authorization URL for a new sign-in (the state is stored)."""
        self._require()
        meta = await self._metadata()
        flow = OidcFlow(
            state=generate_token(32),
            verifier=generate_token(64),
            nonce=generate_token(24),
            redirect_uri=redirect_uri,
            created_at=now_ms(),
        )
        await self.storage.create_oidc_flow(flow)
        url: str = add_params_to_uri(
            meta["authorization_endpoint"],
            [
                ("response_type", "code"),
                ("client_id", self.config.oidc_client_id),
                ("redirect_uri", redirect_uri),
                ("scope", "openid profile email"),
                ("state", flow.state),
                ("nonce", flow.nonce),
                ("code_challenge", create_s256_code_challenge(flow.verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return url

    async def callback(self, state: str, code: str) -> str:
        """Finish a sign-in; the one-time ticket the web client exchanges for tokens."""
        self._require()
        flow = await self.storage.take_oidc_flow(state, now_ms() - FLOW_TTL_MS)
        if flow is None:
            raise refused("unknown, expired or replayed state")
        claims = await self._redeem(flow, code)
        user_id = await self._account(claims)
        ticket = secrets.token_urlsafe(32)
        await self.storage.set_oidc_ticket(state, _hash(ticket), user_id)
        return ticket

    async def exchange(self, ticket: str) -> Tokens:
        user_id = await self.storage.take_oidc_ticket(_hash(ticket), now_ms() - TICKET_TTL_MS)
        if user_id is None:
            raise refused("unknown, expired or used ticket")
        return await self.auth.sign_in(user_id)

    # -- the provider ------------------------------------------------------------------------------
    async def _redeem(self, flow: OidcFlow, code: str) -> dict[str, Any]:
        """The code for tokens at the token endpoint (with the PKCE verifier), and the ID token's claims,
        checked."""
        meta = await self._metadata()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
            "client_id": self.config.oidc_client_id,
        }
        if self.config.oidc_client_secret:
            form["client_secret"] = self.config.oidc_client_secret
        try:
            async with self._http().post(meta["token_endpoint"], data=form) as response:
                tokens = await response.json(content_type=None)
                status = response.status
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HubbubError(Code.UNAVAILABLE, f"the sign-in provider is unavailable: {exc}") from exc
        if status != 200 or not isinstance(tokens, dict) or not isinstance(tokens.get("id_token"), str):
            raise refused(f"the provider refused the code ({status})")
        return await self._verify(tokens["id_token"], flow.nonce)

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, await self._keyset(), algorithms=ALGORITHMS)
        except ValueError:  # a key id we do not know: the provider may have rotated its keys
            try:
                token = jwt.decode(id_token, await self._keyset(refresh=True), algorithms=ALGORITHMS)
            except (JoseError, ValueError) as exc:
                raise refused(f"bad ID token signature ({exc})") from exc
        except JoseError as exc:
            raise refused(f"bad ID token signature ({exc})") from exc
        registry = jwt.JWTClaimsRegistry(
            now=int(time.time()),
            leeway=30,
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.config.oidc_client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(token.claims)
        except JoseError as exc:
            raise refused(f"ID token {exc.error}: {exc.description or ''}".strip()) from exc
        return dict(token.claims)

    async def _account(self, claims: dict[str, Any]) -> int:
        subject = str(claims["sub"])
        user_id = await self.storage.oidc_user(self.issuer, subject)
        if user_id is not None:
            return user_id
        if not self.config.oidc_auto_create:
            raise HubbubError(
                Code.FORBIDDEN, "no account here is linked to this sign-in; ask an administrator"
            )
        nickname = str(claims.get("name") or claims.get("preferred_username") or "")[:64] or None
        user = None
        for attempt in range(5):
            username = _username(claims, subject, attempt)
            if await self.storage.account_by_username(username) is None:
                user = await self.auth.access.create_account(
                    username, nickname or username, NO_PASSWORD, None
                )
                break
        if user is None:
            raise HubbubError(Code.CONFLICT, "no free username for this sign-in; ask an administrator")
        await self.storage.link_oidc(self.issuer, subject, user.id, now_ms())
        return user.id

    async def _metadata(self) -> dict[str, Any]:
        if self._meta is None:
            meta = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
            if meta.get("issuer", "").rstrip("/") != self.issuer:
                raise HubbubError(Code.UNAVAILABLE, "the provider's discovery names another issuer")
            self._meta = meta
        return self._meta

    async def _keyset(self, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            meta = await self._metadata()
            self._keys = KeySet.import_key_set(await self._get_json(meta["jwks_uri"]))  # type: ignore[arg-type]
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http().get(url) as response:
                if response.status != 200:
                    raise HubbubError(Code.UNAVAILABLE, f"the sign-in provider answered {response.status}")
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise HubbubError(Code.UNAVAILABLE, f"the sign-in provider is unavailable: {exc}") from exc
        if not isinstance(data, dict):
            raise HubbubError(Code.UNAVAILABLE, "the sign-in provider answered nonsense")
        return data

    def _http(self) -> aiohttp.ClientSession:
        """The provider is the operator's choice (not a user's), so it is called without the egress guard."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self._session

    def _require(self) -> None:
        if not self.enabled:
            raise HubbubError(Code.NOT_FOUND, "single sign-on is not configured on this server")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _hash(ticket: str) -> str:
    return hashlib.sha256(ticket.encode()).hexdigest()


def _username(claims: dict[str, Any], subject: str, attempt: int) -> str:
    """A username from the provider's preferred one (or the subject), made valid; numbered on a clash."""
    base = _NOT_NAME.sub("", str(claims.get("preferred_username") or ""))[:24].strip(".-") or "sso"
    if len(base) < 3:
        base = f"sso-{base}"
    if attempt == 0:
        return base
    suffix = hashlib.sha256(f"{subject}:{attempt}".encode()).hexdigest()[:6]
    return f"{base}-{suffix}"
