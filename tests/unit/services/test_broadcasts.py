"""Node broadcasts (services/broadcasts.py): two kinds on one channel, told apart by their first byte, each to
its listener; hot-group news keeps its encoding, so a node of the previous release still reads it."""

from __future__ import annotations

import logging

import msgspec
import pytest

from hubbub.services.broadcasts import Forget, NodeBroadcasts, decode_forget, encode_forget, is_forget
from hubbub.services.hot.news import News, decode_news, encode_news


def listener() -> tuple[NodeBroadcasts, list[bytes], list[Forget]]:
    news: list[bytes] = []
    forgets: list[Forget] = []
    return NodeBroadcasts(news.append, forgets.append), news, forgets


def test_each_kind_reaches_its_listener() -> None:
    heard, news, forgets = listener()
    batch = encode_news([News(conv="g:1", seq=2), News(conv="g:2", seq=5, group_changed=True)])
    drop = Forget(blocks=((1, 2),), friendships=((3, 4), (5, 6)))
    heard.heard(batch)
    heard.heard(encode_forget(drop))
    assert news == [batch] and decode_news(batch)[1].group_changed
    assert forgets == [drop]


@pytest.mark.parametrize("size", [0, 1, 16, 70_000])
def test_news_is_never_taken_for_a_drop_whatever_its_size(size: int) -> None:
    """msgpack arrays (fixarray, array 16, array 32) against maps: the first byte decides."""
    payload = encode_news([News(conv=f"g:{i}", seq=i) for i in range(size)])
    assert not is_forget(payload)
    assert is_forget(encode_forget(Forget()))
    assert decode_forget(encode_forget(Forget(blocks=((1, 2),)))) == Forget(blocks=((1, 2),))


def test_a_map_that_is_no_drop_is_logged_and_dropped(caplog: pytest.LogCaptureFixture) -> None:
    heard, news, forgets = listener()
    with caplog.at_level(logging.ERROR):
        heard.heard(msgspec.msgpack.encode({"type": "other"}))
    assert news == [] and forgets == []
    assert "neither hot-group news nor a cache drop" in caplog.text
