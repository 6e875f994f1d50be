"""Node broadcasts: what one node tells every node (``Routing.broadcast``), and which service on a node hears it.

Routing carries broadcasts as opaque bytes and the hub hands every one to ``NodeBroadcasts.heard``. Two kinds
travel, told apart by their first byte, so hot-group news keeps the encoding it had before there were two (a
node of the previous release still reads news, and drops, with a log line, what it does not know):

- **hot-group news** (services/hot/news.py): a msgpack array, for ``HotGroups.heard_broadcast``;
- **``Forget``**: a msgpack map naming pairs of users whose block or friendship just changed, for
  ``FriendService.forget``: every node drops its cached answers for them, so a block, an unblock or a removed
  friendship applies on every node at once, not when the cache entry expires.

At most once, like every broadcast: a node that misses a ``Forget`` (a Redis outage) still drops the entry
when its short TTL ends (``BLOCK_CACHE_S``, ``FRIENDSHIP_CACHE_S``), which stays as the safety net.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec

from hubbub.services.pair_cache import Pair

log = logging.getLogger(__name__)


class Forget(msgspec.Struct, frozen=True, tag="forget"):
    """Pairs whose cached answers every node drops: ``blocks`` (either blocks the other: made or lifted),
    ``friendships`` (a friendship ended; a new one needs no telling, as a "no" is never cached)."""

    blocks: tuple[Pair, ...] = ()
    friendships: tuple[Pair, ...] = ()


_encode = msgspec.msgpack.Encoder().encode
_decode_forget = msgspec.msgpack.Decoder(Forget).decode


def encode_forget(forget: Forget) -> bytes:
    return _encode(forget)


def decode_forget(payload: bytes) -> Forget:
    """``msgspec.DecodeError`` if the payload is not a ``Forget``."""
    return _decode_forget(payload)


def is_forget(payload: bytes) -> bool:
    """A msgpack map (fixmap, map 16, map 32): hot-group news is always an array."""
    return bool(payload) and (0x80 <= payload[0] <= 0x8F or payload[0] in (0xDE, 0xDF))


class NodeBroadcasts:
    """The hub's listener (``Hub.on_broadcast``): each broadcast to the service whose caches it makes stale."""

    def __init__(self, news: Callable[[bytes], None], forget: Callable[[Forget], None]) -> None:
        self.news = news
        self.forget = forget

    def heard(self, payload: bytes) -> None:
        if not is_forget(payload):
            self.news(payload)
            return
        try:
            item = decode_forget(payload)
        except msgspec.DecodeError:
            log.error("dropping a node broadcast that is neither hot-group news nor a cache drop")
            return
        self.forget(item)
