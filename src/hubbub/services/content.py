"""What a message body may contain, per message type: the one place content is validated.

``MessageService.enqueue`` calls ``ContentRules.validate``; a new message type registers a validator
there rather than adding branches elsewhere. Validators run before storing and may be async
(for instance to check that a referenced upload exists and belongs to the sender).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.core.ids import MAX_ID

MAX_MENTIONS = 50
#: ``reply`` is the client's ``{"seq": n}``, turned into a snapshot by services/replies.py.
_TEXT_KEYS = frozenset({"text", "mentions", "mention_all", "reply"})

#: (config, sender, body, in_group) -> None, raising HubbubError when the body is not acceptable.
Validator = Callable[[Config, int, dict[str, Any], bool], Awaitable[None]]


def check_text(config: Config, body: dict[str, Any], in_group: bool) -> None:
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


#: The message types whose body names an upload (docs/media.md: {"upload": id, "caption"?, "poster"?}).
MEDIA_TYPES = ("image", "file", "voice", "video")


class WordCheck(Protocol):
    def apply(self, body: dict[str, Any]) -> None:
        """Filter the body's text in place (replace listed words), or raise ``content_rejected``."""


class ContentRules:
    """One node's content validators by message type: text here, the media types through its media
    service (which checks the named upload against that node's storage). Text and captions then pass the
    node's sensitive-word filter (services/words.py), if it has one."""

    def __init__(self, config: Config, media: MediaCheck | None, words: WordCheck | None = None) -> None:
        self.config = config
        self.media = media
        self.words = words
        # Text, the common case, is checked synchronously in ``validate``; these are the others.
        self.validators: dict[str, Validator] = {}
        for kind in MEDIA_TYPES:
            self.validators[kind] = self._media_validator(kind)

    def _media_validator(self, msg_type: str) -> Validator:
        async def validate_media(config: Config, sender: int, body: dict[str, Any], in_group: bool) -> None:
            if self.media is None:
                raise HubbubError(Code.UNAVAILABLE, "uploads are not available on this node")
            await self.media.attach(sender, msg_type, body, in_group)
            if self.words is not None:
                self.words.apply(body)

        return validate_media

    async def validate(self, sender: int, msg_type: str, body: dict[str, Any], in_group: bool) -> None:
        if msg_type == "text":  # the common case, checked without another coroutine
            check_text(self.config, body, in_group)
            if self.words is not None:
                self.words.apply(body)
            return
        validator = self.validators.get(msg_type)
        if validator is None:
            raise invalid("msg_type", f"must be one of {sorted(['text', *self.validators])}")
        await validator(self.config, sender, body, in_group)


def mentions_of(body: dict[str, Any]) -> tuple[tuple[int, ...], bool]:
    """The users a group message @mentions, and whether it is @all."""
    mentions = body.get("mentions", [])
    mention_all = body.get("mention_all", False)
    if not isinstance(mentions, list) or len(mentions) > MAX_MENTIONS:
        raise invalid("body.mentions", f"a list of at most {MAX_MENTIONS} user ids")
    if not all(isinstance(m, int) and not isinstance(m, bool) and 0 < m <= MAX_ID for m in mentions):
        raise invalid("body.mentions", f"user ids are integers from 1 to {MAX_ID}")
    if not isinstance(mention_all, bool):
        raise invalid("body.mention_all", "must be true or false")
    return tuple(sorted(set(mentions))), mention_all
