"""Message search end to end through REST (issue 16): the background indexer, highlights, paging with
signed cursors, jumping to a result, and bad input answered with clear 4xx codes, never a 5xx."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.core.convs import private_conv
from tests.conftest import PASSWORD, base_url, friends


async def search(client: HubbubClient, q: str, **query: Any) -> dict[str, Any]:
    return dict(await client.api("GET", "/api/v1/search", q=q, **query))


async def found(client: HubbubClient, q: str, want: int, **query: Any) -> dict[str, Any]:
    """Search until ``want`` results are there: the index follows the messages within an indexer pass."""
    deadline = time.monotonic() + 10
    while True:
        page = await search(client, q, **query)
        if len(page["results"]) >= want or time.monotonic() > deadline:
            return page
        await asyncio.sleep(0.1)


async def test_search_cjk_and_english_with_highlights_and_jump(make_client) -> None:
    alice = await make_client("sa_u")
    bob = await make_client("sb_u")
    carol = await make_client("sc_u")
    await friends(alice, bob)
    conv = private_conv(alice.user_id, bob.user_id)
    for text in ["我们明天去北京开会", "周五的会议纪要", "The Meeting moved to Friday", "unrelated chatter"]:
        await alice.send_text(text, to=bob.user_id)
    page = await found(bob, "北京", 1)
    assert [r["text"] for r in page["results"]] == ["我们明天去北京开会"]
    assert page["results"][0]["highlights"] == [[5, 7]] and page["complete"] is True
    page = await found(bob, "会议纪要", 1)
    assert page["results"][0]["message"]["seq"] == 2
    page = await found(bob, "meet friday", 1)
    hit = page["results"][0]
    assert hit["text"] == "The Meeting moved to Friday" and hit["highlights"] == [[4, 8], [21, 27]]
    assert hit["message"]["conv"] == conv and page["next_cursor"] is None
    assert (await search(carol, "meet"))["results"] == []  # not her conversation

    # Jump to the result: the page around its seq.
    around = await bob.api(
        "GET", f"/api/v1/conversations/{conv}/messages/{hit['message']['seq']}/around", before=2, after=1
    )
    assert (
        [m["seq"] for m in around["messages"]] == [2, 3, 4]
        and around["has_older"]
        and not around["has_newer"]
    )
    with pytest.raises(ApiError) as refused:
        await carol.api("GET", f"/api/v1/conversations/{conv}/messages/3/around")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")

    # Recall takes a message out of the results at once.
    await alice.api("POST", f"/api/v1/conversations/{conv}/messages/1/recall")
    assert (await search(bob, "北京"))["results"] == []


async def test_paging_cursor_is_signed(make_client) -> None:
    alice = await make_client("pa_s")
    bob = await make_client("pb_s")
    await friends(alice, bob)
    for i in range(7):
        await alice.send_text(f"page item {i}", to=bob.user_id)
    first = await found(alice, "item", 3, limit=3)
    assert [r["text"] for r in first["results"]] == ["page item 6", "page item 5", "page item 4"]
    cursor = first["next_cursor"]
    second = await search(alice, "item", limit=3, cursor=cursor)
    assert [r["text"] for r in second["results"]] == ["page item 3", "page item 2", "page item 1"]
    rid, _, mac = cursor.partition(".")
    for bad in [f"{int(rid) + 1000}.{mac}", f"{rid}.{mac[:-2]}xx", "garbage", "1" * 80, "-1.x", "١.x"]:
        with pytest.raises(ApiError) as refused:
            await search(alice, "item", cursor=bad)
        assert (refused.value.status, refused.value.code) == (422, "invalid_field")
    for other in [(bob, "item"), (alice, "page")]:  # another user's, or another search's cursor
        with pytest.raises(ApiError) as refused:
            await search(other[0], other[1], cursor=cursor, limit=3)
        assert refused.value.code == "invalid_field"


async def test_bad_input_is_a_clear_4xx(make_client, node) -> None:
    alice = await make_client("ba_s")
    bob = await make_client("bb_s")
    await friends(alice, bob)
    await alice.send_text('quote " and (parens) OR * NEAR', to=bob.user_id)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"q": ""}, 422, "invalid_field"),
        ({"q": "   "}, 422, "invalid_field"),
        ({}, 422, "invalid_field"),
        ({"q": "x" * 201}, 422, "invalid_field"),
        ({"q": " ".join(f"w{i}" for i in range(9))}, 422, "invalid_field"),
        ({"q": "hi", "conv": "nonsense"}, 400, "invalid_id"),
        ({"q": "hi", "conv": "g:999999"}, 403, "forbidden"),
        ({"q": "hi", "conv": "p:999998:999999"}, 403, "forbidden"),
        ({"q": "hi", "kind": "sticker"}, 422, "invalid_field"),
        ({"q": "hi", "since": "abc"}, 422, "invalid_field"),
        ({"q": "hi", "since": "10", "until": "5"}, 422, "invalid_field"),
        ({"q": "hi", "limit": "0"}, 422, "invalid_field"),
        ({"q": "hi", "sender": "-3"}, 422, "invalid_field"),
    ]
    for query, status, code in cases:
        with pytest.raises(ApiError) as refused:
            await alice.api("GET", "/api/v1/search", **query)
        assert (refused.value.status, refused.value.code) == (status, code), query
    # Query syntax of either engine is plain text to search for.
    for q in ['"', '" OR "', "NEAR(", "*", "%", "_", "\\", "a' --", "(parens)", "x" * 200]:
        await alice.api("GET", "/api/v1/search", q=q)
    assert (await found(alice, '" and (parens) OR *', 1))["results"][0]["text"].startswith("quote")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base_url(node)}/api/v1/search", params={"q": "x"}) as resp:
            assert resp.status == 401
    with pytest.raises(ApiError) as refused:
        await alice.api("GET", "/api/v1/conversations/p:1:2/messages/abc/around")
    assert (refused.value.status, refused.value.code) == (404, "not_found")  # the route wants digits


async def test_search_is_rate_limited_per_user(make_node) -> None:
    node = await make_node(search_burst=3, search_rate=0.1)
    alice, bob = HubbubClient(base_url(node)), HubbubClient(base_url(node))
    await alice.register("ra_s", PASSWORD)
    await bob.register("rb_s", PASSWORD)
    for _ in range(3):
        await search(alice, "anything")
    with pytest.raises(ApiError) as refused:
        await search(alice, "anything")
    assert (refused.value.status, refused.value.code) == (429, "rate_limited")
    assert refused.value.retry_after and refused.value.retry_after > 0
    await search(bob, "anything")  # per user
    await alice.close()
    await bob.close()
