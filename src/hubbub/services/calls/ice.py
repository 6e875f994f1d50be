"""ICE servers for a client: STUN and TURN from config, TURN with per-user, time-limited credentials.

The credentials follow the TURN REST API scheme coturn checks with ``use-auth-secret`` /
``static-auth-secret``: the username is ``<expiry unix seconds>:<user id>`` and the password is
``base64(HMAC-SHA1(secret, username))``. coturn recomputes the password from the username and refuses a
username whose expiry has passed, so a leaked credential is worth nothing after ``call_turn_ttl_s`` and
the secret itself never leaves the server.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import msgspec

from hubbub.config import Config


class IceServer(msgspec.Struct, omit_defaults=True):
    """One ``RTCIceServer``: pass it to ``new RTCPeerConnection({iceServers})`` as is."""

    urls: list[str]
    username: str = ""
    credential: str = ""


class IceServers(msgspec.Struct):
    ice_servers: list[IceServer]
    #: Seconds the TURN credentials stay valid; fetch again before placing a call after that.
    ttl_s: int
    #: ``RTCConfiguration.iceTransportPolicy``: "relay" when the server wants all media relayed.
    ice_transport_policy: str = "all"


def turn_credentials(secret: str, user_id: int, expires_at: int) -> tuple[str, str]:
    """(username, password) for coturn's ``use-auth-secret``, valid until ``expires_at`` (unix seconds)."""
    username = f"{expires_at}:{user_id}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def _urls(value: str) -> list[str]:
    return [u.strip() for u in value.split(",") if u.strip()]


def ice_servers(config: Config, user_id: int, now_s: int) -> IceServers:
    servers = []
    if stun := _urls(config.call_stun_urls):
        servers.append(IceServer(urls=stun))
    turn = _urls(config.call_turn_urls)
    if turn and config.call_turn_secret:
        username, password = turn_credentials(
            config.call_turn_secret, user_id, now_s + config.call_turn_ttl_s
        )
        servers.append(IceServer(urls=turn, username=username, credential=password))
    relay = config.call_force_relay and bool(turn and config.call_turn_secret)
    return IceServers(
        ice_servers=servers, ttl_s=config.call_turn_ttl_s, ice_transport_policy="relay" if relay else "all"
    )
