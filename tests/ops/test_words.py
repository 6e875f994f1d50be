"""The sensitive-word filter: replace and reject modes, and a change made on one node reaching another."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.config import ConfigError
from hubbub.services.words import WordFilter
from tests import conftest
from tests.conftest import PASSWORD, base_url, friends


async def test_replace_mode(make_client):
    admin, bob = await make_client("wf_admin"), await make_client("wf_bob")
    await friends(admin, bob)
    listed = await admin.api("POST", "/api/v1/admin/words", {"add": ["Darn", "heck", "darnit"]})
    assert listed == {"words": ["darn", "darnit", "heck"], "mode": "replace"}
    ack = await admin.send_text("DARNIT, what the Heck. darn.", to=bob.user_id)
    stored = (await bob.next_event("msg"))["msg"]
    assert stored["seq"] == ack["seq"] and stored["body"] == {"text": "***, what the ***. ***."}
    history = await bob.api("GET", f"/api/v1/conversations/{stored['conv']}/messages", after_seq=0)
    assert history["messages"][-1]["body"]["text"] == "***, what the ***. ***."
    await admin.send_text("clean text", to=bob.user_id)
    assert (await bob.next_event("msg"))["msg"]["body"] == {"text": "clean text"}
    # removed words pass again
    assert (await admin.api("POST", "/api/v1/admin/words", {"remove": ["heck"]}))["words"] == ["darn", "darnit"]
    await admin.send_text("heck", to=bob.user_id)
    assert (await bob.next_event("msg"))["msg"]["body"] == {"text": "heck"}


async def test_reject_mode(make_node, tmp_path):
    node = await make_node(word_filter="reject")
    url = base_url(node)
    a, b = HubbubClient(url), HubbubClient(url)
    try:
        await a.register("wr_a", PASSWORD)
        await b.register("wr_b", PASSWORD)
        await friends(a, b)
        await a.connect()
        await a.api("POST", "/api/v1/admin/words", {"add": ["forbidden-word"]})
        for send in (
            lambda: a.api("POST", "/api/v1/messages", {"cmid": "r1", "to": b.user_id, "body": {"text": "a FORBIDDEN-WORD"}}),
            lambda: a.send_text("forbidden-words here", to=b.user_id),
        ):
            with pytest.raises(ApiError) as err:
                await send()
            assert (err.value.code, err.value.status in (422, 0)) == ("content_rejected", True)
            assert "forbidden" not in err.value.message  # the refusal does not name the word
        ack = await a.send_text("fine", to=b.user_id)
        assert ack["seq"] == 1  # nothing was stored for the refused ones
    finally:
        await a.close()
        await b.close()


async def test_an_edit_on_one_node_reaches_another(make_node, tmp_path):
    # Two nodes over one SQLite database: a change made through one is picked up by the other's refresher.
    first = await make_node(word_refresh_s=0.1)
    second = await make_node(word_refresh_s=0.1, node_id="second")
    assert first.storage is not second.storage
    await first.services.admin.change_words(add=["spoiler"])
    for _ in range(100):
        if second.services.words.words == ("spoiler",):
            break
        await asyncio.sleep(0.02)
    assert second.services.words.words == ("spoiler",)
    body = {"text": "big Spoiler ahead"}
    second.services.words.apply(body)
    assert body == {"text": "big *** ahead"}


async def test_filter_unit(tmp_path):
    class Words:
        async def words(self):
            return 3, ["bad", "badword", "a.b"]

        async def words_version(self):
            return 3

    f = WordFilter(conftest.test_config(tmp_path), Words())  # type: ignore[arg-type]
    await f.load()
    body = {"text": "a BADWORD, a bad word, aXb is fine, a.b is not", "mentions": [1]}
    f.apply(body)
    assert body == {"text": "a ***, a *** word, aXb is fine, *** is not", "mentions": [1]}
    caption = {"upload": "u1", "caption": "bad"}
    f.apply(caption)
    assert caption == {"upload": "u1", "caption": "***"}
    assert not await f.refresh()  # same version: no reload
    with pytest.raises(ConfigError, match="word_filter"):  # refused by validation, before any component
        conftest.test_config(tmp_path, word_filter="shout").validate()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("d\u200barn it", "*** it"),  # zero-width space inside the word
        ("da\u00adrn", "***"),  # soft hyphen
        ("d\u200da\u2060rn\ufe0f!", "***!"),  # joiner, word joiner, then a variation selector
        ("\u202edarn\u202c", "\u202e***"),  # bidi controls: invisible ones right after a word go with it
        ("ＤＡＲＮ and ｄａｒｎ", "*** and ***"),  # full-width letters (NFKC)
        ("große GROSSE", "*** ***"),  # case folding: ß is ss
        ("cafe\u0301 café", "*** ***"),  # decomposed and composed é
        ("clean text, ok", "clean text, ok"),
        ("日本語のdarnテキスト", "日本語の***テキスト"),
    ],
)
def test_invisible_and_lookalike_spellings_are_caught(text: str, expected: str) -> None:
    """Issue 12.23: the filter was a plain substring match, so a zero-width character inside a word passed."""
    flt = WordFilter(conftest.test_config(conftest.Path("/tmp")), storage=None)  # type: ignore[arg-type]
    flt._use(1, ["darn", "Große", "café"])
    body = {"text": text}
    flt.apply(body)
    assert body["text"] == expected


def test_reject_mode_sees_through_invisible_characters() -> None:
    flt = WordFilter(conftest.test_config(conftest.Path("/tmp"), word_filter="reject"), storage=None)  # type: ignore[arg-type]
    flt._use(1, ["darn"])
    with pytest.raises(Exception, match="refuses"):
        flt.apply({"text": "d\u200bar\u200cn"})
    flt.apply({"caption": "fine"})


async def test_a_zero_width_space_does_not_smuggle_a_word_past_the_filter(make_client):
    admin, bob = await make_client("wz_admin"), await make_client("wz_bob")
    await friends(admin, bob)
    await admin.api("POST", "/api/v1/admin/words", {"add": ["darn"]})
    await admin.send_text("oh d\u200ba\u200brn", to=bob.user_id)
    assert (await bob.next_event("msg"))["msg"]["body"] == {"text": "oh ***"}
