"""Conversation ids: ``p:<a>:<b>`` for the private pair a < b, ``g:<group>`` for a group.

Strings, so one id names a conversation everywhere (frames, URLs, storage keys) whatever its kind. Each
conversation has exactly one spelling: the numbers in it are canonical ids (core/ids.py: no leading zero,
ASCII digits only) and a private pair is written low first. :func:`validate` is what every edge calls on a
client's conversation id; the rest of the server can then compare ids as strings.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated

from msgspec import Meta

from hubbub.core.errors import HubbubError, invalid_id
from hubbub.core.ids import parse_id

#: A conversation id in a body or frame. Its spelling is checked by :func:`validate` (``invalid_id``), not by
#: a length or pattern here, which would refuse some non-canonical spellings as ``invalid_field`` instead:
#: one code for every bad id.
ConvField = Annotated[str, Meta(description="a conversation id, canonical: p:<low>:<high> or g:<id>")]


def private_conv(a: int, b: int) -> str:
    lo, hi = (a, b) if a < b else (b, a)
    return f"p:{lo}:{hi}"


def group_conv(group_id: int) -> str:
    return f"g:{group_id}"


# The send path parses the same few conversation ids many times per message: remembered, bounded.
@lru_cache(maxsize=16384)
def parse_private(conv: str) -> tuple[int, int] | None:
    """The two members of a private conversation id, or None if it is not one (in its canonical form)."""
    parts = conv.split(":")
    if len(parts) != 3 or parts[0] != "p":
        return None
    a, b = parse_id(parts[1]), parse_id(parts[2])
    if a is None or b is None or a >= b:
        return None
    return a, b


@lru_cache(maxsize=16384)
def parse_group(conv: str) -> int | None:
    """The group of a group conversation id, or None if it is not one (in its canonical form)."""
    kind, _, rest = conv.partition(":")
    if kind != "g":
        return None
    return parse_id(rest)


def is_canonical(conv: str) -> bool:
    return parse_private(conv) is not None or parse_group(conv) is not None


def validate(conv: str, field: str = "conv") -> str:
    """``conv`` if it is a conversation id in its canonical form; otherwise the ``invalid_id`` refusal.

    A non-canonical spelling is refused, never normalised: ``g:07`` would otherwise be a second name for
    ``g:7`` that some lookups match and others do not.
    """
    if not is_canonical(conv):
        raise not_a_conversation(field)
    return conv


def not_a_conversation(field: str = "conv") -> HubbubError:
    return invalid_id(field, "a conversation id (p:<low>:<high> or g:<id>)")


def peer_of(conv: str, me: int) -> int | None:
    pair = parse_private(conv)
    if pair is None or me not in pair:
        return None
    return pair[1] if pair[0] == me else pair[0]
