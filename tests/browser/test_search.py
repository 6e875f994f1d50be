"""Message search in the web client (issue 16): Chinese and English, everywhere and in one conversation,
opened with Ctrl+K, "/" and the buttons; a click jumps to the message (loaded around its seq when it is far
older than the window) and shows it highlighted. Desktop and a 390×844 phone.

Screenshots go to ``tests/browser/artifacts/`` (git-ignored); the good ones are copied to docs/screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.test_web_client import (
    PASSWORD,
    expect,
    login,
    login_ui,
    new_page,
    rest,
    running,
    shot,
    sync_api,
)
from tests.browser.test_web_client import browser as browser

pytestmark = pytest.mark.browser
assert sync_api is not None


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Mei, Tom and a third friend; an old Chinese message, an English one, then 120 messages of chatter
    (so both results lie far behind the newest page a client loads)."""
    with running(tmp_path_factory, "search") as srv:
        for name, nick in (("mei", "Mei 美"), ("tom", "Tom"), ("ana", "Ana")):
            rest(
                srv.url, "POST", "/auth/register", {"username": name, "password": PASSWORD, "nickname": nick}
            )
        ids = {name: login(srv.url, name) for name in ("mei", "tom", "ana")}

        def befriend(a: str, b: str) -> None:
            req = rest(srv.url, "POST", "/friends/requests", {"to": ids[b][0]}, ids[a][1])
            rest(srv.url, "POST", f"/friends/requests/{req['id']}/accept", None, ids[b][1])

        def say(sender: str, to: str, *lines: str) -> None:
            for i, line in enumerate(lines):
                body = {
                    "cmid": f"{sender}-{to}-{i}-{line[:8]}",
                    "to": ids[to][0],
                    "type": "text",
                    "body": {"text": line},
                }
                rest(srv.url, "POST", "/messages", body, ids[sender][1])

        befriend("mei", "tom")
        befriend("mei", "ana")
        say("tom", "mei", "我们明天去北京开会，记得带上周五的会议纪要。")
        say("mei", "tom", "The quarterly Meeting moved to Friday afternoon")
        say("tom", "mei", *[f"闲聊 chatter line {i}" for i in range(120)])
        say("ana", "mei", "北京的天气怎么样？", "See you at the meeting")
        yield {"url": srv.url, "ids": ids}


def open_search(page: Any, how: str) -> Any:
    if how == "ctrl-k":
        page.keyboard.press("Control+k")
    elif how == "slash":
        page.locator("body").press("/")
    else:
        page.get_by_test_id(how).click()
    panel = page.get_by_test_id("search-panel")
    expect(panel).to_be_visible()
    return panel


def test_search_chinese_and_english_then_jump(world: dict[str, Any], browser: Any) -> None:
    errors: list[str] = []
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    page = new_page(ctx, errors)
    login_ui(page, world["url"], "mei")

    # Everywhere, in Chinese, from the shortcut: grouped by conversation, the matched word marked.
    panel = open_search(page, "ctrl-k")
    page.get_by_test_id("search-input").fill("北京")
    hits = panel.get_by_test_id("search-hit")
    expect(hits).to_have_count(2)
    expect(panel.get_by_test_id("search-group")).to_have_count(2)
    expect(panel.locator("mark").first).to_have_text("北京")
    shot(page, "search-01-chinese-desktop")

    # Jump to Tom's old message: 120 newer ones sit between it and the newest page.
    tom_hit = panel.locator("[data-testid=search-hit]", has_text="会议纪要")
    seq = tom_hit.get_attribute("data-seq")
    tom_hit.click()
    expect(page.get_by_test_id("search-panel")).to_have_count(0)
    target = page.locator(f"[data-testid=message][data-seq='{seq}']")
    expect(target).to_have_attribute("data-highlighted", "true")
    expect(target).to_be_in_viewport()
    expect(target).to_contain_text("我们明天去北京开会")
    shot(page, "search-02-jumped-desktop")

    # In this conversation only, in English, from the chat header's button; case and word prefix.
    panel = open_search(page, "search-conv")
    expect(page.get_by_test_id("search-scope-conv")).to_have_class("on")
    page.get_by_test_id("search-input").fill("meet FRI")
    expect(panel.get_by_test_id("search-hit")).to_have_count(1)  # Ana's "meeting" is in another chat
    expect(panel.locator("mark")).to_have_text(["Meet", "Fri"])
    page.get_by_test_id("search-scope-all").click()
    expect(panel.get_by_test_id("search-hit")).to_have_count(1)  # "fri" is not in Ana's message
    page.get_by_test_id("search-input").fill("meeting")
    expect(panel.get_by_test_id("search-hit")).to_have_count(2)
    english = panel.locator("[data-testid=search-hit]", has_text="quarterly")
    seq = english.get_attribute("data-seq")
    english.click()
    target = page.locator(f"[data-testid=message][data-seq='{seq}']")
    expect(target).to_have_attribute("data-highlighted", "true")
    expect(target).to_be_in_viewport()

    # Nothing found, said plainly; query syntax is just text.
    panel = open_search(page, "open-search")
    page.get_by_test_id("search-input").fill('"NEAR( * OR')
    page.get_by_test_id("search-input").press("Enter")
    expect(panel.get_by_test_id("search-empty")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.get_by_test_id("search-panel")).to_have_count(0)
    assert not errors, errors
    ctx.close()


def test_search_on_a_phone(world: dict[str, Any], browser: Any) -> None:
    errors: list[str] = []
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark", has_touch=True)
    page = new_page(ctx, errors)
    login_ui(page, world["url"], "mei")
    panel = open_search(page, "slash")
    page.get_by_test_id("search-input").fill("会议")
    hit = panel.get_by_test_id("search-hit")
    expect(hit).to_have_count(1)
    expect(panel.locator("mark")).to_have_text("会议")
    shot(page, "search-03-phone")
    seq = hit.get_attribute("data-seq")
    hit.click()
    target = page.locator(f"[data-testid=message][data-seq='{seq}']")
    expect(target).to_have_attribute("data-highlighted", "true")
    expect(target).to_be_in_viewport()
    shot(page, "search-04-phone-jumped")
    assert not errors, errors
    ctx.close()
