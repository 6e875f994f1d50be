"""How a push leaves the server: one ``PushSender`` per kind of device (pluggable, issue 17).

- ``WebPushSender``: RFC 8030 delivery to the browser's push service, the payload encrypted for the
  subscription (RFC 8291, ``aes128gcm``, by ``pywebpush``) and signed with the server's VAPID key (RFC 8292).
- ``FcmSender``: Firebase Cloud Messaging's HTTP v1 API for native apps, behind config; tested against a local
  fake endpoint only (docs/operations.md, "Web Push").

A sender never raises for a refusal: it returns the push service's status (0: it could not be reached), and
the service decides (sent, retry with backoff, drop the device on 404/410).
"""

from __future__ import annotations

import email.utils
import time
from typing import Protocol

import aiohttp
import msgspec
from pywebpush import WebPusher

from hubbub.engines.storage.base_push import PushDevice
from hubbub.services.webpush.keys import VapidKeys


class Outcome(msgspec.Struct, frozen=True):
    #: The push service's HTTP status; 0 when it could not be reached.
    status: int
    #: Its ``Retry-After``, in seconds from now, if it sent one.
    retry_after_s: float | None = None

    @property
    def delivered(self) -> bool:
        return 200 <= self.status < 300

    @property
    def gone(self) -> bool:
        """The subscription no longer exists: forget the device."""
        return self.status in (404, 410)

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 429 or self.status >= 500


class PushSender(Protocol):
    async def send(
        self, device: PushDevice, payload: bytes, *, ttl: int, topic: str, urgency: str
    ) -> Outcome: ...

    async def close(self) -> None: ...


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now: delay-seconds or an HTTP-date (RFC 9110); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class _Http:
    """One pooled aiohttp session per sender, made on first use (inside the running loop)."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout, connector=aiohttp.TCPConnector(limit=128, limit_per_host=64)
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, data: bytes, headers: dict[str, str]) -> Outcome:
        try:
            async with self.session().post(url, data=data, headers=headers) as response:
                await response.read()
                return Outcome(response.status, retry_after(response.headers.get("Retry-After")))
        except (aiohttp.ClientError, TimeoutError, OSError):
            return Outcome(0)


class WebPushSender(_Http):
    def __init__(self, keys: VapidKeys, timeout_s: float = 10.0) -> None:
        super().__init__(timeout_s)
        self.keys = keys

    def prepare(
        self, device: PushDevice, payload: bytes, *, ttl: int, topic: str, urgency: str
    ) -> tuple[bytes, dict[str, str]]:
        """The encrypted body and headers of one push (apart so the benchmark can time it)."""
        info = {"endpoint": device.endpoint, "keys": {"p256dh": device.p256dh, "auth": device.auth}}
        body = WebPusher(info).encode(payload, "aes128gcm")["body"]
        headers = {
            "Authorization": self.keys.authorization(device.endpoint),
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "TTL": str(ttl),
            "Topic": topic,
            "Urgency": urgency,
        }
        return body, headers

    async def send(
        self, device: PushDevice, payload: bytes, *, ttl: int, topic: str, urgency: str
    ) -> Outcome:
        body, headers = self.prepare(device, payload, ttl=ttl, topic=topic, urgency=urgency)
        return await self.post(device.endpoint, body, headers)


class FcmSender(_Http):
    """FCM HTTP v1: ``POST {base}/v1/projects/{project}/messages:send`` with an OAuth access token; the
    device's ``endpoint`` holds its registration token. The payload goes as the data message ``payload``."""

    def __init__(self, base_url: str, project: str, access_token: str, timeout_s: float = 10.0) -> None:
        super().__init__(timeout_s)
        self.url = f"{base_url.rstrip('/')}/v1/projects/{project}/messages:send"
        self.token = access_token

    async def send(
        self, device: PushDevice, payload: bytes, *, ttl: int, topic: str, urgency: str
    ) -> Outcome:
        message = {
            "message": {
                "token": device.endpoint,
                "data": {"payload": payload.decode()},
                "android": {
                    "collapse_key": topic,
                    "ttl": f"{ttl}s",
                    "priority": "HIGH" if urgency == "high" else "NORMAL",
                },
            }
        }
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        return await self.post(self.url, msgspec.json.encode(message), headers)
