"""The admin console and the access screens (issue 20) in a real Chromium against a real ``hubbub serve``.

Two stories: an admin bans a user from the console and the user's open session closes; a member reports a
message, the admin recalls it from the reports queue, freezes the group, and a join link (with its QR code)
lets a third person in. Screenshots (desktop and 390×844) go to ``tests/browser/artifacts/``.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.browser.test_web_client import (
    PASSWORD,
    befriend,
    expect,
    login,
    login_ui,
    new_page,
    register,
    rest,
    running,
    shot,
)
from tests.browser.test_web_client import browser as browser  # the shared fixture

pytestmark = pytest.mark.browser
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def rest_register(base: str, username: str) -> tuple[int, str]:
    t = rest(
        base,
        "POST",
        "/auth/register",
        {"username": username, "password": PASSWORD, "nickname": username.title()},
    )
    return int(t["user"]["id"]), str(t["access_token"])


def console(page: Any, section: str) -> None:
    page.get_by_test_id(f"admin-nav-{section}").click()
    expect(page.get_by_test_id(f"admin-{section}")).to_be_visible()


def test_admin_bans_a_user_and_their_session_closes(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    errors: list[str] = []
    with running(tmp_path_factory, "admin-ban") as srv:
        admin_ctx = browser.new_context(viewport=DESKTOP, color_scheme="light")
        victim_ctx = browser.new_context(viewport=DESKTOP, color_scheme="light")
        admin = new_page(admin_ctx, errors)
        victim = new_page(victim_ctx, errors)
        register(admin, srv.url, "root", "Root")  # the first account: the server's admin
        register(victim, srv.url, "mallory", "Mallory")

        admin.get_by_test_id("open-admin").click()
        expect(admin.get_by_test_id("admin-dashboard")).to_be_visible()
        expect(admin.get_by_test_id("tile-users").locator(".value")).to_have_text("2")
        expect(admin.get_by_test_id("tile-online")).not_to_contain_text("…")
        shot(admin, "admin-01-dashboard")

        console(admin, "users")
        admin.get_by_test_id("admin-user-search").fill("mall")
        row = admin.locator("[data-testid=admin-user-row][data-username=mallory]")
        row.click()
        admin.get_by_test_id("admin-reason").fill("spamming everyone")
        admin.get_by_test_id("admin-ban-duration").select_option("86400")
        admin.get_by_test_id("admin-ban").click()
        expect(row.get_by_test_id("banned-tag")).to_be_visible()
        shot(admin, "admin-02-user-banned")

        # Mallory's open session is closed by the ban: the app falls back to the login screen.
        expect(victim.get_by_test_id("auth-form")).to_be_visible()
        expect(victim.locator(".error")).to_be_visible()
        victim.fill("input[name=username]", "mallory")
        victim.fill("input[name=password]", PASSWORD)
        victim.get_by_test_id("auth-submit").click()
        expect(victim.locator(".error")).to_have_text("Not allowed")

        console(admin, "audit")
        entry = admin.locator("[data-testid=audit-entry][data-action='user.ban']")
        expect(entry).to_contain_text("spamming everyone")
        expect(entry).to_contain_text("127.0.0.1")
        with admin.expect_download() as download:
            admin.get_by_test_id("audit-export").click()
        lines = download.value.path().read_text().splitlines()
        assert any('"action":"user.ban"' in line for line in lines), lines

        # The console on a phone: sections scroll sideways, tables become cards.
        admin.set_viewport_size(PHONE)
        console(admin, "users")
        admin.get_by_test_id("admin-user-search").fill("")
        expect(admin.locator("[data-testid=admin-user-row]")).to_have_count(2)
        shot(admin, "admin-03-users-phone")
        console(admin, "settings")
        shot(admin, "admin-04-settings-phone")

        # A normal user never sees the console's button, and the page itself says no.
        other = new_page(browser.new_context(viewport=PHONE), errors)
        register(other, srv.url, "plainuser", "Plain")
        expect(other.get_by_test_id("me-name")).to_be_visible()
        assert other.get_by_test_id("open-admin").count() == 0
        other.goto(srv.url + "/admin/users")
        expect(other.get_by_test_id("admin-denied")).to_be_visible()
    assert not [e for e in errors if "403" not in e and "401" not in e], errors


def test_report_recall_freeze_and_join_by_link(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    errors: list[str] = []
    with running(tmp_path_factory, "admin-report") as srv:
        base = srv.url
        rest_register(base, "root")
        alice_id, alice_token = rest_register(base, "alice")
        bob_id, bob_token = rest_register(base, "bob")
        rest_register(base, "carol")
        befriend(base, "alice", "bob")
        group = rest(base, "POST", "/groups", {"name": "Book club", "members": [bob_id]}, alice_token)
        conv = group["conv"]
        for text in ("Welcome to the club", "BUY CHEAP PILLS at spam.example"):
            token = alice_token if text.startswith("Welcome") else bob_token
            body = {"cmid": f"c-{time.monotonic_ns()}", "conv": conv, "type": "text", "body": {"text": text}}
            rest(base, "POST", "/messages", body, token)

        # -- Alice reports Bob's message ---------------------------------------------------------------------
        alice = new_page(browser.new_context(viewport=DESKTOP), errors)
        login_ui(alice, base, "alice")
        alice.get_by_test_id("tab-chats").click()
        alice.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
        spam = alice.locator("[data-testid=message-text]", has_text="BUY CHEAP PILLS")
        spam.click(button="right")
        alice.get_by_test_id("report").click()
        alice.get_by_test_id("report-reason").fill("spam in our book club")
        shot(alice, "admin-05-report-dialog")
        alice.get_by_test_id("report-send").click()
        expect(alice.get_by_test_id("report-done")).to_be_visible()
        alice.keyboard.press("Escape")

        # -- the admin recalls it from the queue -------------------------------------------------------------
        admin = new_page(browser.new_context(viewport=DESKTOP), errors)
        login_ui(admin, base, "root")
        admin.goto(base + "/admin/reports")
        report = admin.get_by_test_id("admin-report").first
        expect(report.get_by_test_id("report-snapshot")).to_contain_text("BUY CHEAP PILLS")
        shot(admin, "admin-06-reports")
        report.locator("[data-action=recall]").click()
        expect(admin.get_by_test_id("reports-empty")).to_be_visible()
        expect(alice.get_by_test_id("recalled")).to_be_visible()
        # The outcome reaches the reporter as a notice from the server.
        mine = rest(base, "GET", "/reports", None, login(base, "alice")[1])["reports"]
        assert mine[0]["outcome"] == "recall"

        # -- a join link with its QR code lets Carol in --------------------------------------------------------
        alice.get_by_test_id("group-info").click()
        alice.get_by_test_id("link-create").click()
        link = alice.get_by_test_id("group-link").first
        expect(alice.get_by_test_id("link-qr-image")).to_be_visible()
        code = link.get_attribute("data-code")
        assert code
        alice.get_by_test_id("link-qr-image").scroll_into_view_if_needed()
        shot(alice, "admin-07-join-link-qr")
        # A group can be reported from its panel too (kind "group", with its name and notice as they are).
        alice.get_by_test_id("group-report").click()
        alice.get_by_test_id("report-reason").fill("the whole group is a spam ring")
        alice.get_by_test_id("report-send").click()
        expect(alice.get_by_test_id("report-done")).to_be_visible()
        alice.keyboard.press("Escape")
        admin.goto(base + "/admin/reports")
        expect(admin.get_by_test_id("admin-report").first).to_contain_text("spam ring")
        expect(admin.get_by_test_id("admin-report").first.locator("[data-action=dismiss_group]")).to_be_visible()

        carol = new_page(browser.new_context(viewport=PHONE), errors)
        login_ui(carol, base, "carol")
        carol.goto(f"{base}/join/{code}")
        expect(carol.get_by_test_id("join-group-name")).to_have_text("Book club")
        shot(carol, "admin-08-join-card-phone")
        carol.get_by_test_id("join-button").click()
        expect(carol.get_by_test_id("chat-title")).to_contain_text("Book club")
        expect(alice.get_by_test_id("system-message").last).to_contain_text("joined by link")

        # -- the admin freezes the group; everyone in it sees it is read-only ------------------------------------
        admin.goto(base + "/admin/groups")
        admin.get_by_test_id("admin-group-search").fill("book")
        admin.locator("[data-testid=admin-group-row][data-name='Book club']").click()
        admin.get_by_test_id("admin-freeze").click()
        expect(admin.get_by_test_id("frozen-tag")).to_be_visible()
        expect(carol.get_by_test_id("system-message").last).to_contain_text("froze the group")
        shot(admin, "admin-09-group-frozen")
        with pytest.raises(Exception, match="403"):
            body = {"cmid": "after-freeze", "conv": conv, "type": "text", "body": {"text": "still here?"}}
            rest(base, "POST", "/messages", body, bob_token)
        admin.set_viewport_size(PHONE)
        shot(admin, "admin-10-groups-phone")
        assert alice_id
    assert not [e for e in errors if "403" not in e and "401" not in e], errors


def test_admin_traces_a_message_in_the_console(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:
    """Issue 23: the trace view. A message sent and read is looked up by id (and opened by a deep link), by
    sender and client id, and an unknown one gets a sentence, not a stack trace."""
    errors: list[str] = []
    with running(tmp_path_factory, "admin-trace", HUBBUB_TRACE_SAMPLE="1") as srv:
        rest_register(srv.url, "root")  # the first account: the server's admin
        alice, alice_token = rest_register(srv.url, "alice")
        bob, bob_token = rest_register(srv.url, "bob")
        befriend(srv.url, "alice", "bob")
        sent = rest(srv.url, "POST", "/messages", {"to": bob, "cmid": "trace-me", "body": {"text": "secret"}}, alice_token)
        rest(srv.url, "POST", f"/conversations/{sent['conv']}/read", {"seq": sent["seq"]}, bob_token)

        page = new_page(browser.new_context(viewport=DESKTOP, color_scheme="light"), errors)
        login_ui(page, srv.url, "root")
        page.goto(f"{srv.url}/admin/trace?id={sent['id']}")
        timeline = page.get_by_test_id("trace-timeline")
        expect(timeline).to_contain_text(str(sent["id"]))
        steps = page.get_by_test_id("trace-step")
        expect(steps.first).to_have_attribute("data-step", "received")
        for step in ("stored", "published", "read"):
            expect(page.locator(f"[data-testid=trace-step][data-step={step}]").first).to_be_visible()
        assert "secret" not in timeline.inner_text()
        shot(page, "admin-05-trace")

        page.get_by_test_id("trace-id").fill("")
        page.get_by_test_id("trace-sender").fill(str(alice))
        page.get_by_test_id("trace-cmid").fill("trace-me")
        page.get_by_test_id("trace-look").click()
        expect(timeline).to_contain_text(str(sent["id"]))

        page.get_by_test_id("trace-sender").fill("")
        page.get_by_test_id("trace-id").fill("123456789")
        page.get_by_test_id("trace-look").click()
        expect(page.get_by_test_id("trace-error")).to_contain_text("No trace of that message")
        page.get_by_test_id("trace-id").fill("abc")
        page.get_by_test_id("trace-look").click()
        expect(page.get_by_test_id("trace-error")).to_have_text("Ids are numbers.")

        page.set_viewport_size(PHONE)
        page.goto(f"{srv.url}/admin/trace?id={sent['id']}")
        expect(page.get_by_test_id("trace-timeline")).to_be_visible()
        shot(page, "admin-06-trace-phone")
    assert not [e for e in errors if "404" not in e], errors
