"""The server's VAPID key pair (RFC 8292): configured, or generated once into the data directory.

Browsers bind a subscription to the public key it was made with (``applicationServerKey``), so every node of
a cluster must sign with the same private key: set ``vapid_private_key`` on all of them, or copy the
generated ``data_dir/vapid-private.pem`` (docs/operations.md, "Web Push").
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

#: A signed JWT is reused this long for one push service (its ``exp`` is 12 h out: RFC 8292 allows 24 h).
_REUSE_S = 11 * 3600
_EXPIRES_S = 12 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create(configured: str, data_dir: Path) -> ec.EllipticCurvePrivateKey:
    """The private key: ``configured`` (PEM, or the raw 32-byte scalar in base64url as ``web-push`` tools
    print it), else ``data_dir/vapid-private.pem``, created (mode 0600) on the first start."""
    if configured:
        text = configured.strip()
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_private_key(text.encode(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return key
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        return ec.derive_private_key(int.from_bytes(raw, "big"), ec.SECP256R1())
    path = data_dir / "vapid-private.pem"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this data dir made it first: use theirs
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


class VapidKeys:
    """Signs the ``Authorization: vapid t=..., k=...`` header, one JWT per push service reused for hours
    (an ES256 signature per push would cost more than the push's encryption)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self.vapid = Vapid02(private_key=private_key)
        self.subject = subject
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        #: What a browser's ``pushManager.subscribe`` takes as ``applicationServerKey`` (base64url).
        self.public_key = b64url(raw)
        self._signed: dict[str, tuple[float, str]] = {}

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        parts = urlsplit(endpoint)
        audience = f"{parts.scheme}://{parts.netloc}"
        now = time.time() if now is None else now
        cached = self._signed.get(audience)
        if cached is not None and cached[0] > now:
            return cached[1]
        claims = {"aud": audience, "exp": int(now) + _EXPIRES_S, "sub": self.subject}
        header = str(self.vapid.sign(claims)["Authorization"])
        self._signed[audience] = (now + _REUSE_S, header)
        return header
