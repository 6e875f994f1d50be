"""``News``: what one node tells every node about a group, and its encoding as a node broadcast.

Routing carries news as opaque bytes (``Routing.broadcast``); only this module knows their shape, so the
gateway's hub and the routing engines know nothing of hot groups. A batch of news is one broadcast: one queue
write per node, whatever the number of groups or members. At most once, like every broadcast: a member who
misses a signal catches up at the next one or by sync; a roster whose drop was lost expires (rosters.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec


class News(msgspec.Struct, frozen=True, array_like=True):
    """A group has messages up to ``seq``: every node signals its own online members of a hot group
    (push-pull), and drops its roster of a group that changed."""

    conv: str
    seq: int
    mentions: tuple[int, ...] = ()
    mention_all: bool = False
    #: The group changed (members, roles, flag, profile): nodes drop their roster of it. Sent for every group,
    #: hot or not, so no node keeps a roster read while a group was hot (services/hot/rosters.py).
    group_changed: bool = False
    #: Signal the members: the group is push-pull. False only for a change of a group that is pushed.
    signal: bool = True


_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder(list[News]).decode


def encode_news(items: Sequence[News]) -> bytes:
    return _encode(list(items))


def decode_news(payload: bytes) -> list[News]:
    """The news of one broadcast; ``msgspec.DecodeError`` if the payload is not news."""
    return _decode(payload)
