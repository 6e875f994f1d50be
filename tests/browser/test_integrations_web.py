"""Integrations in the web client (issue 21): the login page's single sign-on button through a real OpenID
Connect provider (tests/oidc_provider.py, on loopback), the "bot" badge of a chat with a bot, and Settings →
Integrations: a bot and its token, an incoming webhook posted to over real HTTP, and an outgoing webhook
delivering to a real receiver (tests/webhook_receiver.py) whose delivery shows in the log."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from tests.browser.test_everyday_web import DESKTOP, PHONE, axe_violations, register
from tests.browser.test_web_client import (
    WAIT_MS,
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
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, in_thread
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.browser
assert sync_api is not None


def test_single_sign_on_button_and_bot_badge(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:
    provider = Provider()
    with in_thread(provider):
        env = {
            "HUBBUB_OIDC_ISSUER": provider.issuer,
            "HUBBUB_OIDC_CLIENT_ID": CLIENT_ID,
            "HUBBUB_OIDC_CLIENT_SECRET": CLIENT_SECRET,
            "HUBBUB_OIDC_NAME": "Acme ID",
        }
        with running(tmp_path_factory, "sso", **env) as srv:
            rest(srv.url, "POST", "/auth/register", {"username": "bea", "password": "correct-horse-battery"})
            errors: list[str] = []
            context = browser.new_context()
            page = new_page(context, errors)
            page.goto(srv.url)
            button = page.get_by_test_id("sso-button")
            expect(button).to_have_text("Sign in with Acme ID")
            shot(page, "sso-login")
            button.click()  # to the provider, which signs Alice in at once, and back with a ticket
            expect(page.get_by_test_id("me-name")).to_contain_text("Alice SSO")
            assert "sso_ticket" not in page.url  # the one-time ticket is gone from the address bar
            context.close()

            # A bot writes to Bea: her chat with it carries the "bot" badge.
            bea_id, bea_token = login(srv.url, "bea")
            bot = rest(srv.url, "POST", "/bots", {"username": "deploy_bot", "nickname": "Deploy"}, bea_token)
            issued = rest(
                srv.url, "POST", f"/bots/{bot['user']['id']}/tokens", {"scopes": ["send"]}, bea_token
            )
            rest(srv.url, "POST", "/friends/requests", {"to": bot["user"]["id"]}, bea_token)
            body = {"cmid": "d1", "to": bea_id, "type": "text", "body": {"text": "deployed v2"}}
            rest(srv.url, "POST", "/messages", body, issued["secret"])
            context = browser.new_context()
            page = new_page(context, errors)
            login_ui(page, srv.url, "bea")
            page.get_by_test_id("conversation").first.click()
            expect(page.get_by_test_id("bot-badge")).to_have_text("bot")
            shot(page, "bot-chat")
            context.close()
            assert not [e for e in errors if "favicon" not in e], errors


def post_json(url: str, body: dict[str, Any]) -> tuple[int, Any]:
    """A plain HTTP POST with no token, as a CI job posting to an incoming webhook would make it."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def quiet_shot(page: Any, name: str) -> None:
    """A screenshot once the toasts (4.5 s each) are gone, so they do not cover the section."""
    expect(page.locator(".toast")).to_have_count(0)
    shot(page, name)


def test_bots_and_webhooks_from_settings(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:
    """Ivy sets up a bot, a token, an incoming and an outgoing webhook from Settings → Integrations alone:
    the token and the hook URL are shown once and work; a post to the hook appears in her chat; the
    outgoing webhook's signed delivery reaches the receiver and shows in the delivery log; a refusal is
    a sentence; revoking takes effect; the section passes axe on a desktop and on a phone."""
    errors: list[str] = []
    found: dict[str, Any] = {}
    receiver = Receiver()
    env = {"HUBBUB_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8", "HUBBUB_WEBHOOK_POLL_S": "0.1"}
    with in_thread(receiver), running(tmp_path_factory, "integrations", **env) as srv:
        url = srv.url
        ivy_id, _ = register(url, "ivy", "Ivy")
        ctx = browser.new_context(viewport=DESKTOP, color_scheme="light")
        page = new_page(ctx, errors)
        login_ui(page, url, "ivy")
        page.get_by_test_id("open-settings").click()
        settings = page.get_by_test_id("settings")

        # -- a bot, then the same name again: refused in words --------------------------------------------
        bots = settings.get_by_test_id("int-bots")
        bots.get_by_test_id("bot-username").fill("deploy_bot")
        bots.get_by_test_id("bot-nickname").fill("Deploy")
        bots.get_by_test_id("bot-create-submit").click()
        bot = bots.get_by_test_id("bot")
        expect(bot).to_contain_text("Deploy")
        bot_id = int(bot.get_attribute("data-bot") or 0)
        bots.get_by_test_id("bot-username").fill("deploy_bot")
        bots.get_by_test_id("bot-create-submit").click()
        expect(bots.get_by_test_id("bots-error")).to_have_text("That username is taken")

        # -- a send-only token, shown once -----------------------------------------------------------------
        bot.get_by_test_id("token-new").click()
        bot.get_by_test_id("scope-read").uncheck()
        bot.get_by_test_id("token-name").fill("ci")
        bot.get_by_test_id("token-issue").click()
        once = bot.get_by_test_id("token-secret")
        expect(once).to_contain_text("you won’t see it again")
        secret = once.get_by_test_id("secret-value").inner_text()
        assert secret.startswith("hbb_")
        token = bot.get_by_test_id("token")
        expect(token).to_contain_text("ci")
        expect(token).to_contain_text("send")
        expect(token).not_to_contain_text(secret)
        bot.get_by_test_id("bot-befriend").click()  # a bot accepts at once: now it has a chat with Ivy
        expect(bot.get_by_test_id("bot-befriend")).to_have_count(0)
        quiet_shot(page, "integrations-01-bot-token")
        once.get_by_test_id("secret-done").click()
        expect(once).to_have_count(0)

        # -- an incoming webhook into the chat with the bot ----------------------------------------------------
        conv = f"p:{min(ivy_id, bot_id)}:{max(ivy_id, bot_id)}"
        incoming = settings.get_by_test_id("int-incoming")
        incoming.get_by_test_id("incoming-conv").select_option(conv)
        incoming.get_by_test_id("incoming-name").fill("CI")
        incoming.get_by_test_id("incoming-submit").click()
        hook_url = incoming.get_by_test_id("incoming-secret").get_by_test_id("secret-value").inner_text()
        assert hook_url.startswith(f"{url}/api/v1/hooks/hbw_"), hook_url
        expect(incoming.get_by_test_id("incoming-curl")).to_contain_text(hook_url)
        expect(incoming.get_by_test_id("incoming-hook")).to_contain_text("into Deploy as Deploy")

        # -- an outgoing webhook to the receiver; its signing key is what the receiver checks with --------------
        outgoing = settings.get_by_test_id("int-outgoing")
        outgoing.get_by_test_id("outgoing-url").fill(receiver.url)
        outgoing.get_by_test_id("outgoing-conv").select_option(conv)
        outgoing.get_by_test_id("outgoing-submit").click()
        receiver.secret = (
            outgoing.get_by_test_id("outgoing-secret").get_by_test_id("secret-value").inner_text()
        )
        assert len(receiver.secret) == 64
        expect(outgoing.get_by_test_id("outgoing-state")).to_have_text("active")
        bad = axe_violations(page)
        if bad:
            found["settings integrations (desktop)"] = bad
        outgoing.get_by_test_id("outgoing-secret").scroll_into_view_if_needed()
        quiet_shot(page, "integrations-02-webhooks")
        # A URL the server refuses is said in words, in its own section.
        outgoing.get_by_test_id("outgoing-url").fill("ftp://example.org/x")
        outgoing.get_by_test_id("outgoing-url").evaluate(
            "e => e.type = 'text'"
        )  # past the browser's own check
        outgoing.get_by_test_id("outgoing-submit").click()
        expect(outgoing.get_by_test_id("outgoing-error")).to_contain_text("Please check the form — url:")
        expect(incoming.get_by_test_id("incoming-error")).to_have_count(0)
        page.keyboard.press("Escape")
        expect(settings).to_have_count(0)

        # -- a post to the hook over plain HTTP lands in the chat; so does a message sent with the token -------
        status, ack = post_json(hook_url, {"text": "build **green**", "markdown": True, "client_id": "b-1"})
        assert status == 200, ack
        page.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
        expect(page.get_by_test_id("message-text").last).to_contain_text("build")
        sent = {"cmid": "t-1", "to": ivy_id, "type": "text", "body": {"text": "token works"}}
        rest(url, "POST", "/messages", sent, secret)
        expect(page.get_by_test_id("message-text").last).to_have_text("token works")

        # -- the receiver got signed deliveries, and the log shows them ---------------------------------------
        deadline = time.monotonic() + WAIT_MS / 1000
        while len(receiver.received) < 2:
            assert time.monotonic() < deadline, f"deliveries: {receiver.received}"
            time.sleep(0.05)
        assert receiver.bad_signatures == 0
        assert [r["message"]["body"]["text"] for r in receiver.received[:2]] == [
            "build **green**",
            "token works",
        ]
        page.get_by_test_id("open-settings").click()
        hook = settings.get_by_test_id("outgoing-hook")
        hook.get_by_test_id("outgoing-log").click()
        expect(hook.get_by_test_id("delivery").first).to_contain_text("message")
        expect(hook.get_by_test_id("delivery")).to_have_count(2)
        expect(hook.get_by_test_id("delivery-status").first).to_have_text("HTTP 200")
        hook.scroll_into_view_if_needed()
        quiet_shot(page, "integrations-03-delivery-log")

        # -- revoking: the token and the hook stop working -------------------------------------------------
        revoke = settings.get_by_test_id("token-revoke")
        revoke.click()
        expect(revoke).to_have_text("Revoke now")
        revoke.click()
        expect(settings.get_by_test_id("token")).to_have_attribute("data-revoked", "true")
        with pytest.raises(urllib.error.HTTPError) as refused:
            rest(url, "POST", "/messages", {**sent, "cmid": "t-2"}, secret)
        assert refused.value.code == 401
        settings.get_by_test_id("incoming-revoke").click()
        settings.get_by_test_id("incoming-revoke").click()
        expect(settings.get_by_test_id("incoming-hook")).to_have_count(0)
        assert post_json(hook_url, {"text": "too late"})[0] == 404
        ctx.close()

        # -- on a phone, in the dark: usable, and axe finds nothing serious --------------------------------------
        phone_ctx = browser.new_context(viewport=PHONE, color_scheme="dark")
        phone = new_page(phone_ctx, errors)
        login_ui(phone, url, "ivy")
        phone.get_by_test_id("open-settings").click()
        section = phone.get_by_test_id("settings-integrations")
        expect(section.get_by_test_id("bot")).to_have_count(1)
        expect(section.get_by_test_id("outgoing-hook")).to_have_count(1)
        section.get_by_test_id("outgoing-log").click()
        expect(section.get_by_test_id("delivery")).to_have_count(2)
        width = phone.evaluate("document.querySelector('[data-testid=settings]').scrollWidth")
        assert width <= PHONE["width"], (
            f"the settings dialog is {width}px wide on a {PHONE['width']}px screen"
        )
        bad = axe_violations(phone)
        if bad:
            found["settings integrations (phone, dark)"] = bad
        section.get_by_test_id("int-bots").scroll_into_view_if_needed()
        shot(phone, "integrations-04-phone-bots")
        section.get_by_test_id("int-outgoing").scroll_into_view_if_needed()
        shot(phone, "integrations-05-phone-webhooks")
        phone_ctx.close()
    assert not found, "axe: " + json.dumps(found, indent=1, ensure_ascii=False)
    assert not [e for e in errors if "pageerror" in e], errors  # refusals log "Failed to load resource"
