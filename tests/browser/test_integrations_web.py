"""Integrations in the web client (issue 21): the login page's single sign-on button through a real OpenID
Connect provider (tests/oidc_provider.py, on loopback), and the "bot" badge of a chat with a bot."""

from __future__ import annotations

from typing import Any

import pytest

from tests.browser.test_web_client import browser as browser
from tests.browser.test_web_client import expect, login, login_ui, new_page, rest, running, shot, sync_api
from tests.oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider, in_thread

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
