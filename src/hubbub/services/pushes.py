"""Every push the server sends, built in one place: for each kind of event, its frame and who gets it.

Services decide *that* something happened and to whom, after it is stored (docs/architecture.md, "Send
path"); the functions here turn that into routing ``Event``s, each frame encoded once for all its recipients.
Nothing here reads state or publishes: a caller passes the events to ``Routing.publish`` (or, for a hot
group's news, the signaller writes the bytes). docs/protocol.md, "Pushes", describes each frame.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal

from hubbub.core.models import FriendRequest, Message, User
from hubbub.engines.routing.base import Event
from hubbub.protocol.frames import (
    FriendPush,
    HiddenPush,
    MsgPush,
    NewsPush,
    PresencePush,
    ReadPush,
    TypingPush,
    encode,
)


def message(
    msg: Message, recipients: Sequence[int], *, silent: Collection[int] = (), origin: str | None = None
) -> list[Event]:
    """A stored message (``msg``) to ``recipients``. Those in ``silent`` (do not disturb, not mentioned) get
    the same message marked silent: delivered, not notified. ``origin``, the connection that sent it, is
    left out: its ack already told it."""
    events = []
    if silent:
        events.append(Event(tuple(silent), encode(MsgPush(msg=msg, silent=True)), origin))
        recipients = tuple(uid for uid in recipients if uid not in silent)
    if recipients:
        events.append(Event(recipients, encode(MsgPush(msg=msg)), origin))
    return events


def read(conv: str, reader: int, seq: int, recipients: Sequence[int]) -> Event:
    """``reader`` has read ``conv`` up to ``seq``: the peer's receipt, and the reader's other terminals."""
    return Event(recipients, encode(ReadPush(conv=conv, user=reader, seq=seq)))


def typing(conv: str, typist: int, to: Sequence[int]) -> Event:
    """``typist`` is typing in ``conv``: to the peer, or a small group's other members (online ones only:
    routing drops what no live terminal takes)."""
    return Event(tuple(to), encode(TypingPush(conv=conv, user=typist)))


def hidden(conv: str, user: int, seqs: Sequence[int]) -> Event:
    """``user`` hid ``seqs`` ("delete for me"): their own terminals, every one of them."""
    return Event((user,), encode(HiddenPush(conv=conv, seqs=list(seqs))))


def news(conv: str, seq: int, mention: bool) -> bytes:
    """A hot group has messages up to ``seq`` (written by the signaller straight to terminals)."""
    return encode(NewsPush(conv=conv, seq=seq, mention=mention))


def presence(user: int, terminals: Sequence[str], friends: Sequence[int]) -> Event:
    """``user``'s terminals changed (none: offline), to their friends."""
    return Event(friends, encode(PresencePush(user=user, online=bool(terminals), terminals=list(terminals))))


FriendEvent = Literal["request", "accepted", "declined", "removed"]


def friend(
    event: FriendEvent, to: Sequence[int], *, request: FriendRequest | None = None, user: User | None = None
) -> Event:
    """A friendship change; ``user`` is the other side, as ``to`` sees it."""
    return Event(to, encode(FriendPush(event=event, request=request, user=user)))
