"""Conversation ids: ``p:<a>:<b>`` for the private pair a < b, ``g:<group>`` for a group.

Strings, so one id names a conversation everywhere (frames, URLs, storage keys) whatever its kind.
"""

from __future__ import annotations

from hubbub.core.errors import invalid


def private_conv(a: int, b: int) -> str:
    lo, hi = (a, b) if a < b else (b, a)
    return f"p:{lo}:{hi}"


def group_conv(group_id: int) -> str:
    return f"g:{group_id}"


def parse_private(conv: str) -> tuple[int, int] | None:
    """The two members of a private conversation id, or None if it is not one."""
    parts = conv.split(":")
    if len(parts) != 3 or parts[0] != "p" or not _digits(parts[1]) or not _digits(parts[2]):
        return None
    a, b = int(parts[1]), int(parts[2])
    if a >= b:
        return None
    return a, b


def parse_group(conv: str) -> int | None:
    kind, _, rest = conv.partition(":")
    if kind != "g" or not _digits(rest):
        return None
    return int(rest)


def _digits(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²" (which ``int`` refuses: a crash) and "١" (which
    ``int`` reads as 1: a second spelling of the same id). Found by tests/security/test_fuzz.py."""
    return text.isascii() and text.isdigit()


def validate(conv: str) -> str:
    if parse_private(conv) is None and parse_group(conv) is None:
        raise invalid("conv", "not a conversation id")
    return conv


def peer_of(conv: str, me: int) -> int | None:
    pair = parse_private(conv)
    if pair is None or me not in pair:
        return None
    return pair[1] if pair[0] == me else pair[0]
