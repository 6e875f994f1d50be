"""The web client's data-lifecycle screens against a real ``hubbub serve``: export my data (request, status,
download), a group's retention in its panel (the owner sets it), and deleting my account with the password
(a wrong one refused, the right one logs out for good). Screenshots at 1280x800 and 390x844."""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
import zipfile
from typing import Any

import pytest

from tests.browser.test_web_client import (
    ARTIFACTS,
    PASSWORD,
    expect,
    new_page,
    running,
    shot,
)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extras)")
pytestmark = pytest.mark.browser

from tests.browser.test_web_client import browser  # noqa: E402,F401  (the module's Chromium fixture)


def api(url: str, method: str, path: str, body: Any = None, token: str = "") -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + "/api/v1" + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        raw = resp.read()
        return json.loads(raw) if raw else None


def login(page: Any, url: str, username: str) -> None:
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("me-name")).to_be_visible()


def test_export_retention_and_account_deletion(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:  # noqa: F811
    errors: list[str] = []
    with running(tmp_path_factory, "lifecycle") as srv:
        url = srv.url
        alice = api(url, "POST", "/auth/register", {"username": "alice", "password": PASSWORD, "nickname": "Alice"})
        bob = api(url, "POST", "/auth/register", {"username": "bob", "password": PASSWORD, "nickname": "Bob"})
        ta, tb = alice["access_token"], bob["access_token"]
        req = api(url, "POST", "/friends/requests", {"to": bob["user"]["id"]}, ta)
        api(url, "POST", f"/friends/requests/{req['id']}/accept", None, tb)
        group = api(url, "POST", "/groups", {"name": "Book club", "members": [bob["user"]["id"]]}, ta)
        for text in ("Chapter one tonight", "Bring snacks"):
            api(url, "POST", "/messages", {"cmid": text[:8], "conv": group["conv"], "type": "text", "body": {"text": text}}, ta)

        # -- Alice: export my data, on a desktop --------------------------------------------------------------
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
        a = new_page(ctx, errors)
        login(a, url, "alice")
        a.get_by_test_id("open-profile").click()
        expect(a.get_by_test_id("data-settings")).to_be_visible()
        a.get_by_test_id("export-request").click()
        download = a.get_by_test_id("export-download")
        expect(download).to_be_visible()
        expect(a.get_by_test_id("export-status")).to_contain_text("Ready")
        a.get_by_test_id("data-settings").scroll_into_view_if_needed()
        shot(a, "lifecycle-01-export-ready")
        href = download.get_attribute("href")
        assert href and href.startswith("/api/v1/exports/") and "sig=" in href
        with urllib.request.urlopen(url + href, timeout=10) as resp:  # the link needs no token
            archive = zipfile.ZipFile(io.BytesIO(resp.read()))
        assert json.loads(archive.read("profile.json"))["user"]["username"] == "alice"
        assert "Bring snacks" in archive.read(f"messages/{group['conv'].replace(':', '_')}.jsonl").decode()
        a.keyboard.press("Escape")

        # -- Alice (the owner) sets the group's retention in its panel ---------------------------------------------
        a.get_by_test_id("conversation").first.click()
        a.get_by_test_id("group-info").click()
        select = a.get_by_test_id("group-retention-select")
        expect(select).to_be_visible()
        select.select_option("30")
        shot(a, "lifecycle-02-group-retention")
        assert api(url, "GET", f"/conversations/{group['conv']}/retention", None, tb)["own"] == 30
        ctx.close()

        # -- Bob, on a phone, deletes his account: a wrong password first -------------------------------------------
        ctx_b = browser.new_context(viewport={"width": 390, "height": 844}, color_scheme="dark")
        b = new_page(ctx_b, errors)
        login(b, url, "bob")
        b.get_by_test_id("open-profile").click()
        b.get_by_test_id("close-account").click()
        b.get_by_test_id("close-account-password").fill("not my password")
        b.get_by_test_id("close-account-yes").click()
        expect(b.get_by_test_id("close-account-error")).to_have_text("Wrong password")
        expect(b.get_by_test_id("data-settings")).to_be_visible()  # still logged in: nothing happened
        b.get_by_test_id("close-account-password").fill(PASSWORD)
        b.get_by_test_id("close-account-form").scroll_into_view_if_needed()
        shot(b, "lifecycle-03-delete-account-mobile")
        b.get_by_test_id("close-account-yes").click()
        expect(b.get_by_test_id("auth-form")).to_be_visible()
        ctx_b.close()

        try:
            api(url, "POST", "/auth/login", {"username": "bob", "password": PASSWORD})
            raise AssertionError("a closed account logged in")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        profile = api(url, "GET", f"/users/{bob['user']['id']}", None, ta)
        assert profile["nickname"] == "Deleted user" and profile["deleted"] is True
    assert not [e for e in errors if "401" not in e], errors
    assert (ARTIFACTS / "lifecycle-03-delete-account-mobile.png").is_file()
