"""The content rules (services/content.py) without sockets: text bodies, mentions, the media types routed to the
media check, unknown types, and the word filter applied after validation."""

from __future__ import annotations

from typing import Any

import pytest

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.core.ids import MAX_ID
from hubbub.services.content import MAX_MENTIONS, MEDIA_TYPES, ContentRules, mentions_of
from hubbub.services.media import KINDS

CONFIG = Config(max_text_chars=10)


class FakeMedia:
    def __init__(self) -> None:
        self.seen: list[tuple[int, str, bool]] = []

    async def attach(self, sender: int, msg_type: str, body: dict[str, Any], in_group: bool) -> None:
        if body.get("upload") != "ok":
            raise HubbubError(Code.NOT_FOUND, "upload not found")
        self.seen.append((sender, msg_type, in_group))
        body["size"] = 3


class FakeWords:
    def apply(self, body: dict[str, Any]) -> None:
        for key in ("text", "caption"):
            if isinstance(body.get(key), str):
                if "forbidden" in body[key]:
                    raise HubbubError(Code.CONTENT_REJECTED, "no")
                body[key] = body[key].replace("darn", "****")


async def _code(rules: ContentRules, msg_type: str, body: dict[str, Any], in_group: bool = False) -> Code:
    with pytest.raises(HubbubError) as err:
        await rules.validate(1, msg_type, body, in_group)
    return err.value.code


@pytest.mark.parametrize(
    ("body", "in_group", "code"),
    [
        ({}, False, Code.INVALID_FIELD),
        ({"text": "   "}, False, Code.INVALID_FIELD),
        ({"text": 5}, False, Code.INVALID_FIELD),
        ({"text": "x" * 11}, False, Code.TOO_LARGE),
        ({"text": "hi", "extra": 1}, False, Code.INVALID_FIELD),
        ({"text": "hi", "mentions": [2]}, False, Code.INVALID_FIELD),  # mentions are for groups
        ({"text": "hi", "mention_all": True}, False, Code.INVALID_FIELD),
    ],
)
async def test_text_refusals(body: dict[str, Any], in_group: bool, code: Code) -> None:
    assert await _code(ContentRules(CONFIG, None), "text", body, in_group) == code


async def test_text_accepted_and_filtered() -> None:
    rules = ContentRules(CONFIG, None, FakeWords())
    body: dict[str, Any] = {"text": "oh darn"}
    await rules.validate(1, "text", body, False)
    assert body == {"text": "oh ****"}
    await rules.validate(1, "text", {"text": "@x", "mentions": [2], "mention_all": False}, True)
    assert await _code(rules, "text", {"text": "forbidden"}) == Code.CONTENT_REJECTED


async def test_media_types_go_to_the_media_check_then_the_words() -> None:
    media = FakeMedia()
    rules = ContentRules(CONFIG, media, FakeWords())
    for kind in MEDIA_TYPES:
        body: dict[str, Any] = {"upload": "ok", "caption": "darn"}
        await rules.validate(7, kind, body, True)
        assert body == {"upload": "ok", "caption": "****", "size": 3}
    assert media.seen == [(7, kind, True) for kind in MEDIA_TYPES]
    assert await _code(rules, "image", {"upload": "missing"}) == Code.NOT_FOUND
    assert await _code(rules, "file", {"upload": "ok", "caption": "forbidden"}) == Code.CONTENT_REJECTED


async def test_media_without_a_media_service_is_unavailable() -> None:
    assert await _code(ContentRules(CONFIG, None), "image", {"upload": "ok"}) == Code.UNAVAILABLE


async def test_unknown_types_name_the_known_ones() -> None:
    for msg_type in ("system", "recall", "sticker", ""):
        with pytest.raises(HubbubError) as err:
            await ContentRules(CONFIG, None).validate(1, msg_type, {"text": "x"}, False)
        assert err.value.code == Code.INVALID_FIELD and "'text'" in err.value.message


def test_upload_kinds_are_the_media_message_types() -> None:
    assert KINDS is MEDIA_TYPES


@pytest.mark.parametrize(
    "body",
    [
        {"mentions": "all"},
        {"mentions": list(range(1, MAX_MENTIONS + 2))},
        {"mentions": [0]},
        {"mentions": [MAX_ID + 1]},
        {"mentions": [True]},
        {"mentions": ["2"]},
        {"mention_all": "yes"},
    ],
)
def test_mention_refusals(body: dict[str, Any]) -> None:
    with pytest.raises(HubbubError) as err:
        mentions_of(body)
    assert err.value.code == Code.INVALID_FIELD


def test_mentions_are_sorted_and_unique() -> None:
    assert mentions_of({"mentions": [3, 2, 3], "mention_all": True}) == ((2, 3), True)
    assert mentions_of({}) == ((), False)
