"""What a message body may contain, per message type: the one place content is validated.

``prepare`` in the message service calls :func:`validate`; a new message type registers a validator here
(``VALIDATORS``) rather than adding branches elsewhere. Validators run before storing and may be async
(for instance to check that a referenced upload exists and belongs to the sender).
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError, invalid

MAX_MENTIONS = 50
_TEXT_KEYS = frozenset({"text", "mentions", "mention_all"})

#: (config, sender, body, in_group) -> None, raising HubbubError when the body is not acceptable.
Validator = Callable[[Config, int, dict[str, Any], bool], Awaitable[None]]


async def validate_text(config: Config, sender: int, body: dict[str, Any], in_group: bool) -> None:
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        raise invalid("body.text", "a non-empty string is required")
    if len(text) > config.max_text_chars:
        raise HubbubError(Code.TOO_LARGE, f"text is longer than {config.max_text_chars} characters")
    if not body.keys() <= _TEXT_KEYS:
        raise invalid("body", f"a text message body has only {sorted(_TEXT_KEYS)}")
    if not in_group and ("mentions" in body or "mention_all" in body):
        raise invalid("body.mentions", "mentions are for group messages")


class MediaCheck(Protocol):
    async def attach(self, sender: int, msg_type: str, body: dict[str, Any], in_group: bool) -> None:
        """Check the upload a message names (it exists, the sender may use it) and fill in its metadata."""


#: Each node's media service, found through the node's Config object (the one thing validators are given).
#: Weak, and keyed per node, so two nodes in one process each check against their own storage.
_media: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()


def use_media(config: Config, media: MediaCheck) -> None:
    """Called by Services.build: messages of the media types on this node are checked by ``media``."""
    _media[id(config)] = media


def _media_validator(msg_type: str) -> Validator:
    async def validate_media(config: Config, sender: int, body: dict[str, Any], in_group: bool) -> None:
        media: MediaCheck | None = _media.get(id(config))
        if media is None:
            raise HubbubError(Code.UNAVAILABLE, "uploads are not available on this node")
        await media.attach(sender, msg_type, body, in_group)

    return validate_media


VALIDATORS: dict[str, Validator] = {
    "text": validate_text,
    # docs/media.md: {"upload": id, "caption"?, "poster"? (video)}; the server fills in name, size, type...
    **{t: _media_validator(t) for t in ("image", "file", "voice", "video")},
}


async def validate(config: Config, sender: int, msg_type: str, body: dict[str, Any], in_group: bool) -> None:
    validator = VALIDATORS.get(msg_type)
    if validator is None:
        raise invalid("msg_type", f"must be one of {sorted(VALIDATORS)}")
    await validator(config, sender, body, in_group)


def mentions_of(body: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
    """The users a group message @mentions, and whether it is @all."""
    mentions = body.get("mentions", [])
    mention_all = body.get("mention_all", False)
    if not isinstance(mentions, list) or len(mentions) > MAX_MENTIONS:
        raise invalid("body.mentions", f"a list of at most {MAX_MENTIONS} user ids")
    if not all(isinstance(m, int) and not isinstance(m, bool) and m > 0 for m in mentions):
        raise invalid("body.mentions", "user ids must be positive integers")
    if not isinstance(mention_all, bool):
        raise invalid("body.mention_all", "must be true or false")
    return tuple(sorted(set(mentions))), mention_all
