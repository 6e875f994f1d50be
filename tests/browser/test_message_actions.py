"""Message actions in the web client (issue 14), one test per action, in a real headless Chromium against a real
``hubbub serve``: reply and jump to the original, edit and its history, reactions counted live on the other
side, the pinned bar, forward to two conversations, delete for me across two pages of one user, recall with its
confirmation, and the group typing line.

Screenshots (desktop and a 390×844 phone) go to ``tests/browser/artifacts/actions-*.png`` and, when the folder
exists, to ``HUBBUB_SHOTS_DIR``.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.test_web_client import (
    ARTIFACTS,
    PASSWORD,
    expect,
    login,
    login_ui,
    new_page,
    open_conv,
    rest,
    running,
    send,
    wait_until,
)
from tests.browser.test_web_client import browser as browser  # the module's Chromium fixture

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 820}
SHOTS = os.environ.get("HUBBUB_SHOTS_DIR", "")


def snap(page: Any, name: str) -> None:
    page.wait_for_timeout(250)  # let transitions settle
    page.screenshot(path=str(ARTIFACTS / f"actions-{name}.png"))
    if SHOTS and Path(SHOTS).is_dir():
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Alice, Bob, Carol and Dave, all friends; a group "Trip" of Alice (owner), Bob and Carol."""
    with running(tmp_path_factory, "actions") as srv:
        people = {"alice": "Alice", "bob": "Bob", "carol": "Carol", "dave": "Dave"}
        for username, nickname in people.items():
            rest(
                srv.url,
                "POST",
                "/auth/register",
                {"username": username, "password": PASSWORD, "nickname": nickname},
            )
        ids = {name: login(srv.url, name) for name in people}
        names = list(people)
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                req = rest(srv.url, "POST", "/friends/requests", {"to": ids[b][0]}, ids[a][1])
                rest(srv.url, "POST", f"/friends/requests/{req['id']}/accept", None, ids[b][1])
        group = rest(
            srv.url,
            "POST",
            "/groups",
            {"name": "Trip", "members": [ids["bob"][0], ids["carol"][0]]},
            ids["alice"][1],
        )
        yield {"url": srv.url, "ids": ids, "group": group["conv"]}


def say(
    world: dict[str, Any], sender: str, *lines: str, to: str | None = None, conv: str | None = None
) -> None:
    uid, token = world["ids"][sender]
    for line in lines:
        body: dict[str, Any] = {
            "cmid": f"{sender}-{time.monotonic_ns()}",
            "type": "text",
            "body": {"text": line},
        }
        if to:
            body["to"] = world["ids"][to][0]
        else:
            body["conv"] = conv
        rest(world["url"], "POST", "/messages", body, token)


def pconv(world: dict[str, Any], a: str, b: str) -> str:
    x, y = sorted((world["ids"][a][0], world["ids"][b][0]))
    return f"p:{x}:{y}"


def pages(
    browser: Any, world: dict[str, Any], errors: list[str], *who: str, viewport: dict[str, int] = DESKTOP
) -> list[Any]:
    out = []
    for name in who:
        ctx = browser.new_context(viewport=viewport, color_scheme="light")
        page = new_page(ctx, errors)
        login_ui(page, world["url"], name)
        out.append(page)
    return out


def row(page: Any, text: str) -> Any:
    return page.locator("[data-testid=message]").filter(has_text=text).last


def menu(page: Any, text: str) -> Any:
    """Open a message's menu by right-click. Scrolling closes the menu, and the list may still be settling
    (history loading above): try again until it stays open."""
    m = page.get_by_test_id("context-menu")
    for _ in range(5):
        row(page, text).locator(".bubble").click(button="right")
        page.wait_for_timeout(150)
        if m.is_visible():
            break
    expect(m).to_be_visible()
    return m


def close(*ps: Any) -> None:
    for p in ps:
        p.context.close()


def test_reply_and_jump_to_the_original(world: dict[str, Any], browser: Any) -> None:
    conv = pconv(world, "alice", "bob")
    say(world, "bob", "Which trail do we take on Saturday?", to="alice")
    say(world, "bob", *[f"filler {i}" for i in range(60)], to="alice")
    errors: list[str] = []
    a, b = pages(browser, world, errors, "alice", "bob")
    open_conv(a, conv)
    open_conv(b, conv)
    # Alice starts a reply from the menu and cancels it.
    expect(row(a, "filler 59")).to_be_visible()
    menu(a, "filler 58").get_by_test_id("menu-reply").click()
    expect(a.get_by_test_id("reply-bar")).to_contain_text("Bob")
    a.get_by_test_id("compose-cancel").click()
    expect(a.get_by_test_id("reply-bar")).to_have_count(0)
    menu(a, "filler 59").get_by_test_id("menu-reply").click()
    send(a, "The ridge one")
    quote = row(a, "The ridge one").get_by_test_id("quote")
    expect(quote).to_contain_text("filler 59")
    expect(row(b, "The ridge one").get_by_test_id("quote")).to_contain_text("Bob")
    snap(a, "reply-desktop")
    # A reply to a far-back message: Bob answers the first question with the hover button.
    say(world, "alice", "(reply to the first question below)", to="bob")
    b.evaluate("document.querySelector('[data-testid=message-list]').scrollTop = 0")
    first = row(b, "filler 0")
    expect(first).to_be_attached()
    first.scroll_into_view_if_needed()
    first.hover()
    first.get_by_test_id("hover-reply").click()
    send(b, "Answering my own first line")
    q = row(b, "Answering my own first line").get_by_test_id("quote")
    expect(q).to_contain_text("filler 0")
    # Clicking the quote scrolls to the original and highlights it.
    q.click()
    wait_until(b, "() => !!document.querySelector('[data-testid=message][data-highlighted=true]')")
    expect(b.locator("[data-testid=message][data-highlighted=true]")).to_contain_text("filler 0")
    expect(b.locator("[data-testid=message][data-highlighted=true]")).to_be_in_viewport()
    assert not [e for e in errors if "pageerror" in e], errors
    close(a, b)


def test_edit_and_its_history(world: dict[str, Any], browser: Any) -> None:
    conv = pconv(world, "alice", "carol")
    errors: list[str] = []
    a, c = pages(browser, world, errors, "alice", "carol")
    say(world, "carol", "Are we meeting at 9?", to="alice")
    open_conv(a, conv)
    open_conv(c, conv)
    send(a, "Yes, at 9 at the statoin")
    menu(a, "at the statoin").get_by_test_id("menu-edit").click()
    expect(a.get_by_test_id("editing-bar")).to_be_visible()
    box = a.get_by_test_id("composer")
    expect(box).to_have_value("Yes, at 9 at the statoin")
    box.fill("Yes, at 9 at the station")
    box.press("Enter")
    expect(row(a, "at the station").get_by_test_id("edited")).to_be_visible()
    # Carol sees the new text live, marked edited, and reads the history.
    expect(row(c, "at the station").get_by_test_id("message-text")).to_have_text("Yes, at 9 at the station")
    row(c, "at the station").get_by_test_id("edited").click()
    dialog = c.get_by_test_id("edit-history")
    expect(dialog.get_by_test_id("edit-version-text")).to_have_text(
        ["Yes, at 9 at the statoin", "Yes, at 9 at the station"]
    )
    snap(c, "edit-history-desktop")
    c.keyboard.press("Escape")
    # Someone else's message offers no edit.
    expect(menu(a, "meeting at 9").get_by_test_id("menu-edit")).to_have_count(0)
    a.keyboard.press("Escape")
    close(a, c)


def test_reactions_counted_live_on_both_sides(world: dict[str, Any], browser: Any) -> None:
    conv = world["group"]
    errors: list[str] = []
    a, b = pages(browser, world, errors, "alice", "bob")
    say(world, "carol", "Photos from last year are up!", conv=conv)
    open_conv(a, conv)
    open_conv(b, conv)
    # Bob reacts with a quick reaction; Alice sees the count live.
    menu(b, "Photos from last year").get_by_test_id("quick-reaction").first.click()
    chip_a = row(a, "Photos from last year").locator("[data-testid=reaction][data-emoji='👍']")
    expect(chip_a).to_have_attribute("data-count", "1")
    expect(chip_a).to_have_attribute("data-mine", "false")
    # Alice adds hers by clicking the chip: 2 on both sides.
    chip_a.click()
    expect(chip_a).to_have_attribute("data-count", "2")
    expect(chip_a).to_have_attribute("data-mine", "true")
    chip_b = row(b, "Photos from last year").locator("[data-testid=reaction][data-emoji='👍']")
    expect(chip_b).to_have_attribute("data-count", "2")
    assert "Alice" in (chip_b.get_attribute("title") or "") and "You" in (chip_b.get_attribute("title") or "")
    # The list of who reacted (right-click, or a long press on touch).
    chip_b.click(button="right")
    expect(b.get_by_test_id("reaction-who")).to_contain_text("Alice")
    b.get_by_test_id("chat-title").click()
    expect(b.get_by_test_id("reaction-who")).to_have_count(0)
    # The full picker: Bob searches and picks a party popper.
    menu(b, "Photos from last year").get_by_test_id("more-reactions").click()
    b.get_by_test_id("reaction-picker").get_by_test_id("emoji-search").fill("party")
    snap(b, "reaction-picker-desktop")
    b.locator("[data-testid=reaction-picker] [data-testid=emoji-option][data-emoji='🎉']").click()
    expect(
        row(a, "Photos from last year").locator("[data-testid=reaction][data-emoji='🎉']")
    ).to_have_attribute("data-count", "1")
    # Bob takes his thumbs-up back.
    chip_b.click()
    expect(chip_a).to_have_attribute("data-count", "1")
    snap(a, "reactions-desktop")
    close(a, b)


def test_pinned_bar(world: dict[str, Any], browser: Any) -> None:
    conv = world["group"]
    errors: list[str] = []
    a, b = pages(browser, world, errors, "alice", "bob")
    say(world, "alice", "Meeting point: north car park, 8:30", conv=conv)
    say(world, "bob", *[f"chatter {i}" for i in range(30)], conv=conv)
    open_conv(a, conv)
    open_conv(b, conv)
    expect(a.get_by_test_id("pinned-bar")).to_have_count(0)
    # Bob is a member: he may not pin in a group; Alice (the owner) may.
    expect(menu(b, "chatter 29").get_by_test_id("menu-pin")).to_have_count(0)
    b.keyboard.press("Escape")
    a.evaluate("document.querySelector('[data-testid=message-list]').scrollTop = 0")
    target = row(a, "north car park")
    target.scroll_into_view_if_needed()
    menu(a, "north car park").get_by_test_id("menu-pin").click()
    for page in (a, b):
        expect(page.get_by_test_id("pinned-text")).to_have_text("Meeting point: north car park, 8:30")
        expect(page.get_by_test_id("pin-notice").last).to_contain_text("pinned a message")
    # A click on the bar shows the pinned message.
    b.get_by_test_id("pinned-show").click()
    wait_until(b, "() => !!document.querySelector('[data-testid=message][data-highlighted=true]')")
    expect(b.locator("[data-testid=message][data-highlighted=true]")).to_contain_text("north car park")
    snap(b, "pinned-desktop")
    b.set_viewport_size(PHONE)
    snap(b, "pinned-phone")
    b.set_viewport_size(DESKTOP)
    expect(b.get_by_test_id("pinned-unpin")).to_have_count(0)
    a.get_by_test_id("pinned-unpin").click()
    expect(b.get_by_test_id("pinned-bar")).to_have_count(0)
    close(a, b)


def test_forward_to_two_conversations(world: dict[str, Any], browser: Any) -> None:
    src = pconv(world, "bob", "dave")
    errors: list[str] = []
    (d,) = pages(browser, world, errors, "dave")
    (c,) = pages(browser, world, errors, "carol")
    say(world, "bob", "Tickets are on sale Monday", "Bring your student card", to="dave")
    open_conv(d, src)
    # Dave selects both messages and forwards them to Carol and to Alice, naming Bob.
    menu(d, "Tickets are on sale").get_by_test_id("menu-select").click()
    row(d, "Bring your student card").click()
    expect(d.get_by_test_id("select-count")).to_have_text("2 selected")
    snap(d, "select-desktop")
    d.get_by_test_id("select-forward").click()
    dialog = d.get_by_test_id("forward-dialog")
    for who in ("carol", "alice"):
        dialog.locator(f"[data-testid=forward-target][data-conv='{pconv(world, 'dave', who)}']").click()
    dialog.get_by_test_id("forward-show-sender").check()
    snap(d, "forward-desktop")
    dialog.get_by_test_id("forward-send").click()
    expect(dialog).to_have_count(0)
    # Carol gets both, in order, marked forwarded from Bob; Alice's conversation has them too (REST).
    open_conv(c, pconv(world, "dave", "carol"))
    expect(c.get_by_test_id("message-text")).to_have_text(
        ["Tickets are on sale Monday", "Bring your student card"]
    )
    expect(c.get_by_test_id("forwarded").first).to_have_text("Forwarded from Bob")
    _, alice_token = world["ids"]["alice"]
    conv_a = pconv(world, "dave", "alice")
    page = rest(world["url"], "GET", f"/conversations/{conv_a}/messages?limit=10", None, alice_token)
    got = [m["body"].get("text") for m in page["messages"] if m["body"].get("forward")]
    assert got == ["Tickets are on sale Monday", "Bring your student card"]
    close(c, d)


def test_delete_for_me_on_two_pages_of_one_user(world: dict[str, Any], browser: Any) -> None:
    """Carol has two pages open, both live (each tab is its own session, issue 15): page 2 deletes two messages
    for Carol, page 1 drops them at once (the ``hidden`` push); Dave still has them, and a reload keeps them
    hidden."""
    conv = pconv(world, "carol", "dave")
    say(world, "dave", "keep this one", "delete me 1", "delete me 2", to="carol")
    errors: list[str] = []
    (c1,) = pages(browser, world, errors, "carol")
    (d,) = pages(browser, world, errors, "dave")
    for page in (c1, d):
        open_conv(page, conv)
        expect(row(page, "delete me 2")).to_be_visible()
    (c2,) = pages(browser, world, errors, "carol")
    open_conv(c2, conv)
    expect(c1.get_by_test_id("conn-status")).to_have_count(0)  # page 1 stays live beside page 2
    menu(c2, "delete me 1").get_by_test_id("menu-select").click()
    row(c2, "delete me 2").click()
    c2.get_by_test_id("select-hide").click()
    expect(c2.locator("[data-testid=message]").filter(has_text="delete me")).to_have_count(0)
    expect(row(c2, "keep this one")).to_be_visible()
    # Page 1 hears of it live, without a reload.
    expect(c1.locator("[data-testid=message]").filter(has_text="delete me")).to_have_count(0)
    expect(row(c1, "keep this one")).to_be_visible()
    # Only for Carol: Dave still has them.
    expect(row(d, "delete me 1")).to_be_visible()
    # A reload (a fresh sync) keeps them hidden.
    c1.reload()
    open_conv(c1, conv)
    expect(row(c1, "keep this one")).to_be_visible()
    expect(c1.locator("[data-testid=message]").filter(has_text="delete me")).to_have_count(0)
    close(c1, c2, d)


def test_recall_with_confirmation_and_time_left(world: dict[str, Any], browser: Any) -> None:
    conv = pconv(world, "bob", "carol")
    errors: list[str] = []
    b, c = pages(browser, world, errors, "bob", "carol")
    say(world, "carol", "hello Bob", to="bob")
    open_conv(b, conv)
    open_conv(c, conv)
    send(b, "Oops, wrong chat")
    # Acknowledged first (it has its seq): the row is re-rendered then, which would take the focus away.
    expect(row(b, "Oops, wrong chat")).to_have_attribute("data-seq", re.compile(r"^\d+$"))
    # The keyboard reaches the menu: focus the message, Enter opens it, arrows move, Escape closes it.
    row(b, "Oops, wrong chat").focus()
    b.keyboard.press("Enter")
    m = b.get_by_test_id("context-menu")
    expect(m).to_be_visible()
    expect(m.get_by_test_id("quick-reaction").first).to_be_focused()
    b.keyboard.press("ArrowUp")
    expect(m.get_by_test_id("report").or_(m.get_by_test_id("recall"))).to_be_focused()
    b.keyboard.press("Escape")
    expect(m).to_have_count(0)
    expect(row(b, "Oops, wrong chat")).to_be_focused()
    m = menu(b, "Oops, wrong chat")
    expect(m.get_by_test_id("recall")).to_contain_text("left)")
    m.get_by_test_id("recall").click()
    dialog = b.get_by_test_id("recall-confirm")
    expect(dialog.get_by_test_id("recall-left")).to_contain_text("Time left: 1:")
    snap(b, "recall-confirm-desktop")
    # Cancel keeps it; confirm recalls it on both sides.
    dialog.get_by_role("button", name="Cancel").click()
    expect(row(c, "Oops, wrong chat")).to_be_visible()
    menu(b, "Oops, wrong chat").get_by_test_id("recall").click()
    b.get_by_test_id("recall-confirm-go").click()
    expect(c.get_by_test_id("recalled").last).to_have_text("Bob recalled a message")
    expect(b.get_by_test_id("recalled").last).to_have_text("You recalled a message")
    close(b, c)


def test_group_typing_line(world: dict[str, Any], browser: Any) -> None:
    conv = world["group"]
    errors: list[str] = []
    a, b, c = pages(browser, world, errors, "alice", "bob", "carol")
    for page in (a, b, c):
        open_conv(page, conv)
    b.get_by_test_id("composer").press_sequentially("I think", delay=30)
    expect(a.get_by_test_id("chat-presence")).to_have_text("Bob is typing…")
    c.get_by_test_id("composer").press_sequentially("Maybe", delay=30)
    expect(a.get_by_test_id("chat-presence")).to_have_text("Bob and Carol are typing…")
    snap(a, "typing-desktop")
    # Bob sends: only Carol is left typing.
    b.get_by_test_id("composer").press("Enter")
    expect(a.get_by_test_id("chat-presence")).to_have_text("Carol is typing…")
    close(a, b, c)


def test_phone_layout_menu_quote_and_reactions(world: dict[str, Any], browser: Any) -> None:
    """The same actions on a 390×844 phone in Chinese: the menu fits the screen, a reply shows its quote."""
    conv = world["group"]
    errors: list[str] = []
    (p,) = pages(browser, world, errors, "carol", viewport=PHONE)
    p.evaluate("localStorage.setItem('hubbub.locale', 'zh')")
    p.reload()
    expect(p.get_by_test_id("me-name")).to_be_attached()
    say(world, "alice", "Phone check: who brings the map?", conv=conv)
    p.get_by_test_id("tab-chats").click()
    p.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
    target = row(p, "who brings the map")
    expect(target).to_be_visible()
    m = menu(p, "who brings the map")
    box = m.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    expect(m.get_by_test_id("menu-reply")).to_have_text("回复")
    snap(p, "menu-phone")
    m.get_by_test_id("quick-reaction").nth(1).click()
    m = menu(p, "who brings the map")
    m.get_by_test_id("menu-reply").click()
    expect(p.get_by_test_id("reply-bar")).to_contain_text("回复 Alice")
    send(p, "我带地图")
    expect(row(p, "我带地图").get_by_test_id("quote")).to_contain_text("who brings the map")
    snap(p, "reply-phone")
    menu(p, "我带地图").get_by_test_id("menu-forward").click()
    expect(p.get_by_test_id("forward-dialog")).to_be_visible()
    snap(p, "forward-phone")
    p.keyboard.press("Escape")
    menu(p, "我带地图").get_by_test_id("recall").click()
    expect(p.get_by_test_id("recall-left")).to_contain_text("剩余时间")
    snap(p, "recall-confirm-phone")
    p.keyboard.press("Escape")
    p.set_viewport_size(DESKTOP)
    snap(p, "reply-zh-desktop")
    close(p)
