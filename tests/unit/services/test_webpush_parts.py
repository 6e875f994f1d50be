"""The pure parts of Web Push: what a push says under each privacy setting, Retry-After, and the VAPID key's
life (generated once into the data directory, or configured; one JWT per push service for hours)."""

from __future__ import annotations

import base64
import email.utils
import os
import stat
import time
from pathlib import Path

import jwt
import msgspec
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from hubbub.engines.storage.base_push import PushDevice, PushJob
from hubbub.services.webpush import payloads
from hubbub.services.webpush.keys import VapidKeys, b64url, load_or_create
from hubbub.services.webpush.senders import Outcome, retry_after


def _job(kind: str = "msg", conv: str = "g:7", mention: bool = False) -> PushJob:
    device = PushDevice(id="d", user_id=2, sid="s", kind="webpush", endpoint="https://p.test/x", created_at=0)
    return PushJob(
        device=device,
        conv=conv,
        kind=kind,
        seq=9,
        count=3,
        title="Ann (crew)",
        text="hello",
        mention=mention,
        attempts=0,
        lease="l",
    )


def test_payload_by_preview_setting() -> None:
    full = msgspec.json.decode(payloads.payload(_job(), "full"))
    assert full == {
        "type": "msg",
        "conv": "g:7",
        "seq": 9,
        "count": 3,
        "tag": "conv:g:7",
        "title": "Ann (crew)",
        "mention": False,
        "body": "hello",
    }
    sender = msgspec.json.decode(payloads.payload(_job(), "sender"))
    assert "body" not in sender and sender["title"] == "Ann (crew)"
    assert msgspec.json.decode(payloads.payload(_job(), "none")) == {"type": "wake"}
    clear = msgspec.json.decode(payloads.payload(_job("clear"), "none"))
    assert clear == {"type": "clear", "conv": "g:7", "tag": "conv:g:7"}


def test_topic_and_urgency() -> None:
    topic = payloads.topic_of("g:123456789")
    assert len(topic) <= 32 and topic == payloads.topic_of("g:123456789") != payloads.topic_of("g:1")
    assert set(topic) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert payloads.urgency_of(_job(conv="p:1:2")) == "high"
    assert payloads.urgency_of(_job(mention=True)) == "high"
    assert payloads.urgency_of(_job()) == "normal"
    assert payloads.urgency_of(_job("clear")) == "low"


def test_retry_after_in_seconds_or_a_date() -> None:
    assert retry_after("120") == 120.0
    later = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (retry_after(later) or 0) <= 61
    assert retry_after(None) is None and retry_after("soon") is None
    assert Outcome(410).gone and Outcome(503).transient and Outcome(0).transient and Outcome(201).delivered
    assert not Outcome(400).transient and not Outcome(403).gone


def test_a_generated_key_is_kept_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create("", tmp_path)
    path = tmp_path / "vapid-private.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = load_or_create("", tmp_path)
    assert first.private_numbers() == again.private_numbers()


def test_a_configured_key_pem_or_raw(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    raw = b64url(key.private_numbers().private_value.to_bytes(32, "big"))
    for configured in (pem, raw):
        assert load_or_create(configured, tmp_path).private_numbers() == key.private_numbers()
    assert not (tmp_path / "vapid-private.pem").exists(), "a configured key writes nothing"


def test_one_jwt_per_push_service_for_hours(tmp_path: Path) -> None:
    keys = VapidKeys(load_or_create("", tmp_path), "mailto:ops@example.org")
    now = time.time()
    header = keys.authorization("https://push.example.org/a/1", now)
    assert keys.authorization("https://push.example.org/b/2", now + 3600) == header
    assert keys.authorization("https://other.example.org/a", now) != header
    assert keys.authorization("https://push.example.org/a/1", now + 11 * 3600 + 1) != header
    token = dict(p.strip().split("=", 1) for p in header[6:].split(","))
    raw = base64.urlsafe_b64decode(token["k"] + "=" * (-len(token["k"]) % 4))
    assert token["k"] == keys.public_key
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    claims = jwt.decode(token["t"], public, algorithms=["ES256"], audience="https://push.example.org")
    assert claims["sub"] == "mailto:ops@example.org" and now < claims["exp"] <= now + 24 * 3600
