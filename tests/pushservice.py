"""A push service for tests: the receiving side of RFC 8030, on a local port, written from the RFCs.

It makes subscriptions the way a browser does (a P-256 key pair and a 16-byte auth secret per subscription),
and for every push it receives it checks what a real push service and browser would:
- ``Authorization: vapid t=<JWT>, k=<key>`` (RFC 8292): an ES256 JWT signed by ``k``, whose ``aud`` is this
  service's origin, whose ``exp`` is in the future and at most 24 h away, with a ``mailto:``/``https:``
  ``sub``; and ``k`` is the key the subscription was made with (the server's ``applicationServerKey``);
- ``TTL`` present, ``Content-Encoding: aes128gcm``;
- the body decrypts (RFC 8291 key derivation + RFC 8188 ``aes128gcm``, implemented here with the
  ``cryptography`` primitives, independently of the server's library) with the subscription's private key.

Refusals are the RFC's: 401/403 for a bad VAPID header, 400 for a bad body, 404 for an unknown subscription,
410 for one marked gone. Tests can make it answer 429/5xx (with ``Retry-After``) to exercise retries.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _hkdf(salt: bytes, ikm: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def decrypt_aes128gcm(body: bytes, private_key: ec.EllipticCurvePrivateKey, auth_secret: bytes) -> bytes:
    """RFC 8291 section 3.4 and RFC 8188: one record, the sender's public key as the key id."""
    salt, rs, idlen = body[:16], struct.unpack("!I", body[16:20])[0], body[20]
    sender_public = body[21 : 21 + idlen]
    ciphertext = body[21 + idlen :]
    if idlen != 65 or rs < 18 or len(ciphertext) > rs:
        raise ValueError("not a single aes128gcm record keyed by a P-256 public key")
    ua_public = private_key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    ecdh = private_key.exchange(ec.ECDH(), peer)
    ikm = _hkdf(auth_secret, ecdh, b"WebPush: info\x00" + ua_public + sender_public, 32)
    cek = _hkdf(salt, ikm, b"Content-Encoding: aes128gcm\x00", 16)
    nonce = _hkdf(salt, ikm, b"Content-Encoding: nonce\x00", 12)
    padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
    end = padded.rstrip(b"\x00")
    if not end.endswith(b"\x02"):
        raise ValueError("the last record's delimiter is missing")
    return end[:-1]


@dataclass
class Received:
    subscription: str
    headers: dict[str, str]
    payload: dict[str, Any]
    at: float


@dataclass
class Subscription:
    id: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    #: The applicationServerKey it was made with (base64url); pushes signed with another key are refused.
    server_key: str
    gone: bool = False
    #: Statuses (with a Retry-After) to answer before accepting, one per push.
    failures: deque[tuple[int, str | None]] = field(default_factory=deque)

    @property
    def keys(self) -> dict[str, str]:
        public = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(public), "auth": b64url(self.auth)}


class PushService:
    def __init__(self) -> None:
        self.subscriptions: dict[str, Subscription] = {}
        self.received: list[Received] = []
        self.refused: list[tuple[str, int, str]] = []
        self.arrived = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0
        #: Decrypt every body (the benchmark may turn it off to measure the server alone).
        self.verify = True

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def subscribe(self, server_key: str) -> dict[str, Any]:
        """A new subscription, as ``PushSubscription.toJSON()`` gives it."""
        sub = Subscription(
            b64url(os.urandom(12)), ec.generate_private_key(ec.SECP256R1()), os.urandom(16), server_key
        )
        self.subscriptions[sub.id] = sub
        return {"endpoint": f"{self.origin}/push/{sub.id}", "keys": sub.keys}

    def of(self, endpoint: str) -> list[Received]:
        sub_id = endpoint.rsplit("/", 1)[1]
        return [r for r in self.received if r.subscription == sub_id]

    async def wait_for(self, endpoint: str, count: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.of(endpoint)) < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{len(self.of(endpoint))} pushes arrived, expected {count}")
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), min(left, 0.2))
            except TimeoutError:
                pass
        return self.of(endpoint)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/push/{sub}", self._push)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _refuse(self, sub_id: str, status: int, why: str) -> web.Response:
        self.refused.append((sub_id, status, why))
        return web.Response(status=status, text=why)

    async def _push(self, request: web.Request) -> web.Response:
        sub_id = request.match_info["sub"]
        sub = self.subscriptions.get(sub_id)
        if sub is None:
            return self._refuse(sub_id, 404, "no such subscription")
        if sub.gone:
            return self._refuse(sub_id, 410, "unsubscribed")
        why = self._check_vapid(request.headers.get("Authorization", ""), sub)
        if why:
            return self._refuse(sub_id, 403 if "key" in why else 401, why)
        if "TTL" not in request.headers:
            return self._refuse(sub_id, 400, "TTL is required")
        body = await request.read()
        if sub.failures:
            status, retry = sub.failures.popleft()
            self.refused.append((sub_id, status, "told to fail"))
            return web.Response(status=status, headers={"Retry-After": retry} if retry else {})
        if request.headers.get("Content-Encoding") != "aes128gcm":
            return self._refuse(sub_id, 400, "Content-Encoding must be aes128gcm")
        if len(body) > 4096:
            return self._refuse(sub_id, 413, "payload too large")
        try:
            plain = decrypt_aes128gcm(body, sub.private_key, sub.auth) if self.verify else b"{}"
            payload = json.loads(plain)
        except Exception as exc:
            return self._refuse(sub_id, 400, f"cannot decrypt: {exc!r}")
        self.received.append(Received(sub_id, dict(request.headers), payload, time.monotonic()))
        self.arrived.set()
        return web.Response(status=201, headers={"Location": f"/message/{len(self.received)}"})

    def _check_vapid(self, header: str, sub: Subscription) -> str:
        if not header.startswith("vapid "):
            return "Authorization must be vapid t=..., k=..."
        params = dict(part.strip().split("=", 1) for part in header[6:].split(","))
        token, key = params.get("t", ""), params.get("k", "")
        if key != sub.server_key:
            return "the VAPID key is not the subscription's applicationServerKey"
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        try:
            claims = jwt.decode(token, public, algorithms=["ES256"], audience=self.origin)
        except jwt.PyJWTError as exc:
            return f"bad JWT: {exc}"
        if claims.get("exp", 0) > time.time() + 24 * 3600:
            return "exp is more than 24 hours away"
        if not str(claims.get("sub", "")).startswith(("mailto:", "https:")):
            return "sub must be a mailto: or https: URL"
        return ""
