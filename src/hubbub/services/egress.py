"""Outgoing HTTP to addresses users chose (webhook deliveries, the before-send hook, attachment fetches),
kept away from the server's own networks.

A user who can make the server call any URL can make it probe the private network it sits in (SSRF). So every
outgoing request resolves its host through ``GuardedResolver``, which drops loopback, private, link-local,
multicast and reserved addresses unless ``webhook_allow_networks`` lists their network; a host with no
address left is refused. Checking at connect time (not once before) means a name that resolves to a public
address when checked and to 127.0.0.1 when connected (DNS rebinding) is refused too.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from hubbub.core.errors import Code, HubbubError, invalid

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> tuple[Network, ...]:
    """``webhook_allow_networks``: comma-separated CIDRs."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip())


def address_allowed(address: str, allowed: tuple[Network, ...]) -> bool:
    """Public addresses always; others only inside an allowed network."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if any(ip in net for net in allowed):
        return True
    return ip.is_global and not ip.is_multicast


class RefusedDestination(OSError):
    """The host resolved to no address outgoing requests may reach."""


class GuardedResolver(AbstractResolver):
    def __init__(self, allowed: tuple[Network, ...]) -> None:
        self.allowed = allowed
        self._inner = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        kept = [r for r in found if address_allowed(r["host"], self.allowed)]
        if not kept:
            raise RefusedDestination(f"{host} resolves to no address this server may call")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def check_url(url: str, field: str = "url") -> str:
    """An http(s) URL with a host, at most 2048 characters; ``invalid_field`` otherwise."""
    parts = urlsplit(url)
    if len(url) > 2048 or parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid(field, "an http:// or https:// URL of at most 2048 characters")
    return url


class Egress:
    """One client session for every outgoing request of the node (connections are reused)."""

    def __init__(self, allow_networks: str) -> None:
        self.allowed = parse_networks(allow_networks)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.allowed), limit=100)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def guard_literal(self, url: str) -> None:
        """A URL naming an IP address is not resolved (aiohttp connects to it directly): check it here."""
        host = urlsplit(url).hostname or ""
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return
        if not address_allowed(host, self.allowed):
            raise RefusedDestination(f"{host} is not an address this server may call")

    async def post_json(
        self, url: str, body: bytes, headers: dict[str, str], timeout_s: float
    ) -> tuple[int, bytes]:
        """POST; (status, first 64 KiB of the body). Raises ``RefusedDestination``, ``TimeoutError`` or
        ``aiohttp.ClientError``."""
        self.guard_literal(url)
        all_headers = {"Content-Type": "application/json", "User-Agent": "Hubbub-Webhook/1", **headers}
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self.session().post(
                url, data=body, headers=all_headers, timeout=timeout, allow_redirects=False
            ) as response:
                return response.status, await response.content.read(65536)
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedDestination):  # the resolver's refusal, wrapped by aiohttp
                raise exc.os_error from None
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def refused(exc: BaseException) -> HubbubError:
    """An outgoing request's failure as the client-facing error."""
    return HubbubError(Code.UNAVAILABLE, f"the call failed: {exc or type(exc).__name__}")
