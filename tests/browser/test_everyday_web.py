"""The web client for a whole day of use (issue 15), in a real Chromium against a real ``hubbub serve``.

One story per server, grouped to keep the run short: links and history (a URL per conversation, Back and
reload), the "new messages" divider and the jumps, Markdown without raw HTML, emoji-only messages, folding
long messages, the emoji picker, long text never cut, the send preview and previews in words; then the
multi-session and social side (two tabs both live, a rename seen live, a block refused, settings); and an
axe-core accessibility check of the main screens with no serious or critical violations.

Screenshots go to ``tests/browser/artifacts/`` (git-ignored).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.browser.test_web_client import (
    PASSWORD,
    ROOT,
    expect,
    login,
    login_ui,
    new_page,
    rest,
    running,
    sample_png,
    send,
    shot,
    sync_api,
    wait_until,
)
from tests.browser.test_web_client import browser as browser

pytestmark = pytest.mark.browser
assert sync_api is not None

AXE = ROOT / "web" / "node_modules" / "axe-core" / "axe.min.js"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def register(base: str, username: str, nickname: str) -> tuple[int, str]:
    rest(base, "POST", "/auth/register", {"username": username, "password": PASSWORD, "nickname": nickname})
    return login(base, username)


def befriend(base: str, a: tuple[int, str], b: tuple[int, str]) -> None:
    req = rest(base, "POST", "/friends/requests", {"to": b[0]}, a[1])
    rest(base, "POST", f"/friends/requests/{req['id']}/accept", None, b[1])


def say(base: str, sender: tuple[int, str], to: int, text: str, cmid: str) -> None:
    rest(
        base, "POST", "/messages", {"cmid": cmid, "to": to, "type": "text", "body": {"text": text}}, sender[1]
    )


def path(page: Any) -> str:
    return str(page.evaluate("location.pathname"))


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """Run axe-core in the page (injected through the debugging protocol, which the page's CSP allows) and
    return its serious and critical violations."""
    if not AXE.is_file():
        pytest.skip("axe-core is not installed (npm --prefix web ci)")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    result = page.evaluate(
        """async () => {
            const r = await axe.run(document, { resultTypes: ['violations'] })
            return r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 8).map(n => n.target.join(' ') + ' :: ' + (n.failureSummary || '').slice(0, 160)) }))
        }"""
    )
    return [v for v in result if v["impact"] in ("serious", "critical")]


def check_accessible(page: Any, where: str, found: dict[str, Any]) -> None:
    """Collect a screen's serious violations; the test asserts once at the end, naming every screen."""
    bad = axe_violations(page)
    if bad:
        found[where] = bad


def test_links_unread_markdown_emoji_long_text_and_send_preview(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    errors: list[str] = []
    # A small file limit, so an upload over it is quick to provoke.
    with running(tmp_path_factory, "everyday", HUBBUB_MAX_FILE_BYTES="50000") as srv:
        url = srv.url
        mei = register(url, "mei", "Mei")
        tom = register(url, "tom", "Tom")
        befriend(url, mei, tom)
        conv = f"p:{min(mei[0], tom[0])}:{max(mei[0], tom[0])}"
        for i in range(1, 6):
            say(url, mei, tom[0], f"Earlier line {i}", f"m-{i}")
        # Tom writes while Mei is away: 30 lines, some rich.
        for i in range(1, 26):
            say(url, tom, mei[0], f"Unread line {i}", f"t-{i}")
        say(url, tom, mei[0], "**bold** *it* ~~gone~~ `code` see www.example.com and <b>raw</b>", "t-md")
        say(url, tom, mei[0], "```\nlet x = **1**\n```", "t-code")
        say(url, tom, mei[0], "[bad](javascript:alert(1)) [good](https://example.org/x)", "t-links")
        say(
            url,
            tom,
            mei[0],
            "\n".join(f"Long paragraph line {i} with some words" for i in range(40)),
            "t-long",
        )
        say(url, tom, mei[0], "🎉🎉", "t-emoji")

        ctx = browser.new_context(viewport=DESKTOP, color_scheme="light")
        page = new_page(ctx, errors)
        login_ui(page, url, "mei")
        row = page.locator(f"[data-testid=conversation][data-conv='{conv}']")
        expect(row.get_by_test_id("unread")).to_have_text("30")
        row.click()

        # -- a URL per conversation; the divider sits above the first unread -----------------------------
        assert path(page) == f"/chat/{conv}"
        divider = page.get_by_test_id("unread-divider")
        expect(divider).to_have_count(1)
        first_unread = (
            page.locator("[data-testid=message]", has=page.get_by_test_id("message-text"))
            .filter(has_text="Unread line 1")
            .first
        )
        expect(first_unread).to_be_visible()
        shot(page, "everyday-01-divider")

        # -- Markdown: the subset becomes elements, raw HTML and javascript: links stay text ----------------
        rich = page.get_by_test_id("message-text").filter(has_text="bold")
        expect(rich.locator("strong")).to_have_text("bold")
        expect(rich.locator("em")).to_have_text("it")
        expect(rich.locator("s")).to_have_text("gone")
        expect(rich.locator("code")).to_have_text("code")
        expect(rich.locator("a")).to_have_attribute("href", "http://www.example.com/")
        expect(rich).to_contain_text("<b>raw</b>")
        assert page.locator("[data-testid=message-text] b").count() == 0
        expect(page.locator("[data-testid=message-text] pre")).to_have_text("let x = **1**")
        links = page.get_by_test_id("message-text").filter(has_text="good").locator("a")
        expect(links).to_have_count(1)
        expect(links).to_have_attribute("href", "https://example.org/x")
        assert page.locator("a[href^='javascript']").count() == 0

        # -- long messages fold behind "Read more"; emoji-only ones are large -----------------------------
        more = page.get_by_test_id("read-more")
        expect(more).to_have_attribute("aria-expanded", "false")
        more.click()
        expect(more).to_have_attribute("aria-expanded", "true")
        expect(page.locator("[data-jumbo='2']")).to_have_count(1)

        # -- Back leaves the chat for the list, Forward returns, a reload reopens it -------------------------
        page.go_back()
        wait_until(page, "() => location.pathname === '/'")
        expect(page.get_by_test_id("chat-view")).to_have_count(0)
        page.go_forward()
        expect(page.get_by_test_id("chat-view")).to_have_attribute("data-conv", conv)
        page.reload()
        expect(page.get_by_test_id("chat-view")).to_have_attribute("data-conv", conv)
        expect(page.get_by_test_id("message-text").last).to_contain_text("🎉")

        # -- the emoji picker: search, pick, and the emoji is remembered as recent ---------------------------
        page.get_by_test_id("emoji-button").click()
        picker = page.get_by_test_id("emoji-picker")
        expect(picker.get_by_test_id("emoji-option").first).to_be_visible()
        assert picker.get_by_test_id("emoji-option").count() > 50
        picker.get_by_test_id("emoji-search").fill("pizza")
        pizza = picker.locator("[data-testid=emoji-option][aria-label='pizza']")
        pizza.click()
        expect(page.get_by_test_id("composer")).to_have_value(re.compile("🍕"))
        shot(page, "everyday-02-emoji-picker")
        picker.get_by_test_id("emoji-search").fill("")
        expect(picker.get_by_test_id("emoji-recent")).to_contain_text("🍕")
        page.keyboard.press("Escape")
        expect(picker).to_have_count(0)
        send(page, "🍕")
        expect(page.locator("[data-jumbo='1']").last).to_contain_text("🍕")

        # -- long text: a counter, a sentence past the limit, and the offer to send it as a file -------------
        box = page.get_by_test_id("composer")
        box.fill("x" * 3500)
        expect(page.get_by_test_id("char-count")).to_have_text("3500 / 4000")
        box.fill("y" * 9000)
        expect(box).to_have_value("y" * 9000)  # never cut
        expect(page.get_by_test_id("long-over")).to_contain_text("5000 characters over the limit of 4000")
        box.press("Enter")
        expect(box).to_have_value("y" * 9000)  # refused out loud, kept
        shot(page, "everyday-03-long-text")
        page.get_by_test_id("send-as-file").click()
        expect(box).to_have_value("")
        expect(page.get_by_test_id("file-name").last).to_have_text("message.txt")
        expect(row).to_contain_text("File: message.txt")

        # -- the send preview: two photos, one removed, a caption ------------------------------------------
        page.get_by_test_id("file-input").set_input_files(
            files=[
                {"name": "one.png", "mimeType": "image/png", "buffer": sample_png(400, 300)},
                {"name": "two.png", "mimeType": "image/png", "buffer": sample_png(300, 400)},
            ]
        )
        preview = page.get_by_test_id("send-preview")
        expect(preview.get_by_test_id("preview-item")).to_have_count(2)
        shot(page, "everyday-04-send-preview")
        preview.get_by_test_id("preview-remove").first.click()
        expect(preview.get_by_test_id("preview-item")).to_have_count(1)
        preview.get_by_test_id("preview-caption").fill("Sunset at the ridge")
        preview.get_by_test_id("preview-send").click()
        expect(preview).to_have_count(0)
        mine = page.locator("[data-testid=message][data-mine=true][data-type=image]")
        expect(mine).to_have_count(1)
        expect(mine.last).to_contain_text("Sunset at the ridge")
        expect(row).to_contain_text("Photo · Sunset at the ridge")

        # -- an upload over the limit says the limit, offers no Retry, and stays until removed -------------
        page.get_by_test_id("file-input").set_input_files(
            files=[{"name": "big.zip", "mimeType": "application/zip", "buffer": b"z" * 60_000}]
        )
        page.get_by_test_id("preview-send").click()
        failed = page.get_by_test_id("upload").last
        expect(failed.get_by_test_id("upload-error")).to_have_text("larger than 49 KB")
        expect(failed.get_by_test_id("upload-retry")).to_have_count(0)
        page.wait_for_timeout(500)
        expect(failed).to_be_visible()
        shot(page, "everyday-04b-upload-too-large")
        failed.get_by_test_id("upload-cancel").click()
        expect(page.get_by_test_id("upload")).to_have_count(0)

        # -- Tom sees it all on a phone; Back from a chat returns to the list, not out of the app ------------
        phone = browser.new_context(viewport=PHONE, color_scheme="dark")
        tp = new_page(phone, errors)
        login_ui(tp, url, "tom")
        tp.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
        expect(tp.get_by_test_id("chat-view")).to_be_visible()
        expect(tp.get_by_test_id("message-text").filter(has_text="🍕")).to_have_count(1)
        shot(tp, "everyday-05-phone-chat")
        tp.go_back()
        expect(tp.get_by_test_id("chat-view")).to_have_count(0)
        expect(tp.get_by_test_id("conversation").first).to_be_visible()
        shot(tp, "everyday-06-phone-list")

        assert not [e for e in errors if "pageerror" in e], errors
        ctx.close()
        phone.close()


def test_accessibility_names_keyboard_and_axe(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:
    """axe-core finds no serious or critical violation on the login screen, the chat list and a chat
    (light and dark, desktop and phone); the list and the messages can be walked with the keyboard."""
    errors: list[str] = []
    found: dict[str, Any] = {}
    with running(tmp_path_factory, "a11y") as srv:
        url = srv.url
        ana = register(url, "ana", "Ana")
        ben = register(url, "ben", "Ben with a rather long name that should never overflow a dialog")
        befriend(url, ana, ben)
        for i in range(1, 4):
            say(url, ben, ana[0], f"Hello **{i}**", f"b-{i}")
        ctx = browser.new_context(viewport=DESKTOP, color_scheme="light")
        page = new_page(ctx, errors)
        page.goto(url)
        expect(page.get_by_test_id("auth-form")).to_be_visible()
        check_accessible(page, "login", found)
        login_ui(page, url, "ana")
        expect(page.get_by_test_id("conversation")).to_have_count(1)
        check_accessible(page, "chat list", found)

        # Keyboard: Tab reaches the conversation, Enter opens it, the messages take focus in turn.
        row = page.get_by_test_id("conversation").first
        row.focus()
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("chat-view")).to_be_visible()
        expect(page.get_by_test_id("message-text").last).to_contain_text("Hello 3")
        page.get_by_test_id("message-list").focus()
        page.keyboard.press("ArrowUp")
        focused = "() => document.activeElement?.closest('[data-testid=message]')?.innerText ?? ''"
        assert "Hello 3" in page.evaluate(focused)
        page.keyboard.press("ArrowUp")
        assert "Hello 2" in page.evaluate(focused)
        # Focus is visible: an outline on the focused message, or a ring around its bubble.
        assert page.evaluate(
            """() => {
                const el = document.activeElement
                const bubble = el.querySelector('.bubble')
                return getComputedStyle(el).outlineStyle !== 'none'
                    || (bubble !== null && getComputedStyle(bubble).boxShadow !== 'none')
            }"""
        )
        check_accessible(page, "chat", found)
        page.get_by_test_id("emoji-button").click()
        expect(page.get_by_test_id("emoji-option").first).to_be_visible()
        check_accessible(page, "emoji picker", found)
        page.keyboard.press("Escape")

        dark = browser.new_context(viewport=PHONE, color_scheme="dark")
        phone = new_page(dark, errors)
        login_ui(phone, url, "ana")
        check_accessible(phone, "phone list (dark)", found)
        phone.get_by_test_id("conversation").first.click()
        expect(phone.get_by_test_id("message-text").last).to_contain_text("Hello 3")
        check_accessible(phone, "phone chat (dark)", found)
        ctx.close()
        dark.close()
    assert not found, "axe: " + json.dumps(found, indent=1, ensure_ascii=False)


def test_two_tabs_live_profiles_blocks_prefs_and_settings(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    """Two tabs of one user both live and both receiving; a rename seen live by a friend; a remark shown
    instead of the name; chat prefs synced between the tabs; a block refused end to end and undone in
    settings; sessions listed and the other ones logged out; sign-up rules shown up front."""
    errors: list[str] = []
    with running(tmp_path_factory, "social") as srv:
        url = srv.url
        lin = register(url, "lin", "Lin")
        kai = register(url, "kai", "Kai")
        befriend(url, lin, kai)
        conv = f"p:{min(lin[0], kai[0])}:{max(lin[0], kai[0])}"
        say(url, kai, lin[0], "Hi Lin", "k-1")

        # -- sign-up shows the rules before anything goes wrong, and refuses in a sentence ------------------
        guest_ctx = browser.new_context(viewport=DESKTOP)
        guest = new_page(guest_ctx, errors)
        guest.goto(url)
        guest.get_by_test_id("to-register").click()
        expect(guest.get_by_test_id("username-rule")).to_contain_text("3–32 characters")
        expect(guest.get_by_test_id("password-rule")).to_contain_text("At least 8 characters")
        guest.fill("input[name=username]", "no spaces please")
        guest.fill("input[name=password]", PASSWORD)
        guest.get_by_test_id("auth-submit").click()
        expect(guest.locator(".error")).to_have_text(
            "The username can only use letters a–z, digits, and _ . - (no spaces)."
        )
        shot(guest, "everyday-07-signup-rules")
        guest_ctx.close()

        # -- Lin in two tabs (one browser, two device ids): both live, both receive ------------------------
        ctx = browser.new_context(viewport=DESKTOP)
        tab1 = new_page(ctx, errors)
        login_ui(tab1, url, "lin")
        tab2 = new_page(ctx, errors)
        tab2.goto(url)
        expect(tab2.get_by_test_id("me-name")).to_have_text("Lin")
        d1 = tab1.evaluate("sessionStorage.getItem('hubbub.device')")
        d2 = tab2.evaluate("sessionStorage.getItem('hubbub.device')")
        assert d1 and d2 and d1 != d2
        for tab in (tab1, tab2):
            tab.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
        say(url, kai, lin[0], "Both of you?", "k-2")
        for tab in (tab1, tab2):
            expect(tab.get_by_test_id("message-text").last).to_have_text("Both of you?")
            expect(tab.get_by_test_id("conn-status")).to_have_count(0)  # neither was knocked offline
        send(tab2, "Yes, from tab two")
        expect(tab1.get_by_test_id("message-text").last).to_have_text("Yes, from tab two")

        # -- Kai renames; Lin sees it live; then Lin's remark wins --------------------------------------------
        kctx = browser.new_context(viewport=PHONE)
        kp = new_page(kctx, errors)
        login_ui(kp, url, "kai")
        rest(url, "PATCH", "/me", {"nickname": "Kai the Builder"}, kai[1])
        expect(tab1.get_by_test_id("chat-title")).to_contain_text("Kai the Builder")
        tab1.get_by_test_id("chat-who").click()
        card = tab1.get_by_test_id("profile-card")
        expect(card.get_by_test_id("card-username")).to_have_text("@kai")
        card.get_by_test_id("remark-input").fill("Cousin Kai")
        card.get_by_test_id("remark-save").click()
        expect(tab1.get_by_test_id("chat-title")).to_contain_text("Cousin Kai")
        expect(tab2.get_by_test_id("chat-title")).to_contain_text("Cousin Kai")  # the remark push
        shot(tab1, "everyday-08-profile-card")

        # -- chat prefs from tab 1 show in tab 2: pin, mute, mark unread, archive ----------------------------
        tab1.keyboard.press("Escape")
        expect(card).to_have_count(0)
        row1 = tab1.locator(f"[data-testid=conversation][data-conv='{conv}']")
        row2 = tab2.locator(f"[data-testid=conversation][data-conv='{conv}']")
        tab1.locator(".wrapper", has=row1).get_by_test_id("chat-menu-button").click()
        tab1.get_by_test_id("pref-mute").click()
        expect(row2.get_by_test_id("muted-icon")).to_be_visible()
        tab1.locator(".wrapper", has=row1).get_by_test_id("chat-menu-button").click()
        tab1.get_by_test_id("pref-pin").click()
        expect(row2.get_by_test_id("pinned-icon")).to_be_visible()
        tab2.locator(".wrapper", has=row2).get_by_test_id("chat-menu-button").click()
        tab2.get_by_test_id("pref-unread").click()
        expect(row1.get_by_test_id("marked-unread")).to_be_visible()
        shot(tab1, "everyday-09-chat-prefs")
        tab1.locator(".wrapper", has=row1).get_by_test_id("chat-menu-button").click()
        tab1.get_by_test_id("pref-archive").click()
        expect(row2).to_have_count(0)
        expect(tab2.get_by_test_id("archived-toggle")).to_contain_text("Archived chats (1)")

        # -- Lin blocks Kai: Kai's message is refused, out loud -----------------------------------------------
        tab1.get_by_test_id("archived-toggle").click()
        row1.click()
        tab1.get_by_test_id("chat-who").click()
        card.get_by_test_id("card-block").click()
        card.get_by_test_id("card-confirm").click()
        expect(card.get_by_test_id("card-blocked")).to_be_visible()
        tab1.keyboard.press("Escape")
        kp.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
        send(kp, "Are you there?")
        failed = kp.get_by_test_id("send-failed")
        expect(failed).to_contain_text("blocked")
        shot(kp, "everyday-10-blocked-phone")

        # -- settings: the block is listed and undone; sessions; log out the others ---------------------------
        tab1.get_by_test_id("open-settings").click()
        settings = tab1.get_by_test_id("settings")
        expect(settings.get_by_test_id("blocked-user")).to_contain_text("Cousin Kai")
        # One browser login for both tabs (plus the logins this test made over REST).
        expect(settings.locator("[data-testid=session][data-current=true]")).to_have_count(1)
        before = len(rest(url, "GET", "/me/sessions", None, lin[1])["sessions"])
        expect(settings.get_by_test_id("session")).to_have_count(before)
        settings.get_by_test_id("privacy-nobody").check()
        shot(tab1, "everyday-11-settings")
        settings.get_by_test_id("unblock").click()
        expect(settings.get_by_test_id("blocked-user")).to_have_count(0)
        phone_lin = browser.new_context(viewport=PHONE)
        lp = new_page(phone_lin, errors)
        login_ui(lp, url, "lin")
        settings.get_by_test_id("old-password").fill("wrong-password-here")
        settings.get_by_test_id("new-password").fill("another-horse-battery")
        settings.get_by_test_id("change-password").click()
        expect(settings.get_by_test_id("password-error")).to_have_text("The current password is not right.")
        tab1.keyboard.press("Escape")
        tab1.get_by_test_id("open-settings").click()
        expect(settings.get_by_test_id("session")).to_have_count(before + 1)
        settings.get_by_test_id("logout-others").click()
        expect(lp.get_by_test_id("auth-form")).to_be_visible()  # the phone's session ended
        expect(settings.get_by_test_id("session")).to_have_count(1)
        lin = login(url, "lin")
        assert rest(url, "GET", "/me/privacy", None, lin[1]) == {"last_seen": "nobody"}

        assert not [e for e in errors if "pageerror" in e], errors
        for c in (ctx, kctx, phone_lin):
            c.close()


def test_group_messages_from_a_blocked_user_are_folded(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    """In a group, what someone I blocked wrote is folded ("Message from a blocked user · Show") — the ones
    already on screen as soon as the block is made, the ones they send afterwards too; one click shows a
    message; the others' messages and my own stay as they are; unblocking unfolds them all."""
    errors: list[str] = []
    with running(tmp_path_factory, "blocked-group") as srv:
        url = srv.url
        una = register(url, "una", "Una")
        vic = register(url, "vic", "Vic")
        wes = register(url, "wes", "Wes")
        befriend(url, una, vic)
        befriend(url, una, wes)
        group = rest(url, "POST", "/groups", {"name": "Book club", "members": [vic[0], wes[0]]}, una[1])
        conv = group["conv"] if group.get("conv") else f"g:{group['id']}"

        def group_say(who: tuple[int, str], text: str, cmid: str) -> None:
            body = {"cmid": cmid, "conv": conv, "type": "text", "body": {"text": text}}
            rest(url, "POST", "/messages", body, who[1])

        group_say(vic, "Vic was here first", "v-1")
        group_say(wes, "Wes says hi", "w-1")
        ctx = browser.new_context(viewport=PHONE)
        page = new_page(ctx, errors)
        login_ui(page, url, "una")
        page.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
        expect(page.get_by_test_id("message-text").last).to_have_text("Wes says hi")
        expect(page.get_by_test_id("blocked-message")).to_have_count(0)

        # The block (made elsewhere: another of Una's sessions) folds what is already on screen, live.
        rest(url, "PUT", f"/blocks/{vic[0]}", None, una[1])
        folded = page.get_by_test_id("blocked-message")
        expect(folded).to_have_count(1)
        expect(folded).to_have_text("Message from a blocked user · Show")
        expect(page.get_by_test_id("message-text").filter(has_text="Vic was here first")).to_have_count(0)
        # What Vic sends now is folded as it arrives; Wes and Una are untouched.
        group_say(vic, "Vic again", "v-2")
        expect(folded).to_have_count(2)
        send(page, "Una speaking")
        expect(page.get_by_test_id("message-text").last).to_have_text("Una speaking")
        expect(page.get_by_test_id("message-text").filter(has_text="Wes says hi")).to_have_count(1)
        shot(page, "everyday-12-blocked-in-group-phone")
        # One click shows that one message only.
        folded.first.click()
        expect(page.get_by_test_id("message-text").filter(has_text="Vic was here first")).to_have_count(1)
        expect(folded).to_have_count(1)
        # Unblocking unfolds the rest.
        rest(url, "DELETE", f"/blocks/{vic[0]}", None, una[1])
        expect(folded).to_have_count(0)
        expect(page.get_by_test_id("message-text").filter(has_text="Vic again")).to_have_count(1)

        # The chat-row menu, with its pin and archive icons (icons.ts), and the pin it sets in the list.
        page.get_by_test_id("back").click()
        row = page.locator(f"[data-testid=conversation][data-conv='{conv}']")
        page.locator(".wrapper", has=row).get_by_test_id("chat-menu-button").click()
        expect(page.get_by_test_id("pref-archive")).to_be_visible()
        shot(page, "everyday-13-chat-menu-phone")
        page.get_by_test_id("pref-pin").click()
        expect(row.get_by_test_id("pinned-icon")).to_be_visible()
        assert not [e for e in errors if "pageerror" in e], errors
        ctx.close()
