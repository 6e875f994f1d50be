"""The installable app and Web Push in a real headless Chromium (issue 17).

Bob logs in; the service worker registers and caches the app shell; the page reports its visibility; he turns
push on in the profile (a real ``pushManager.subscribe`` needs the browser vendor's push service, which this
machine cannot reach, and Playwright's incognito contexts have no Push API, so when Chromium refuses the subscription the device is registered through REST with a
subscription of the local RFC 8030 service instead). A push delivered through the DevTools protocol
(``ServiceWorker.deliverPushMessage``) shows a notification (``registration.getNotifications()``) titled with
the sender, tagged with the conversation; a second one replaces it (one per conversation) and a ``clear``
closes it. Clicking it (a ``notificationclick`` dispatched in the worker: a headless browser has no
notification to click) opens the conversation in the open tab. Offline, the app still opens from the cache and
says it is offline.
"""

from __future__ import annotations

import json
import re
import urllib.request
from typing import Any

import pytest

from tests.browser.test_web_client import (
    PASSWORD,
    befriend,
    expect,
    login,
    login_ui,
    new_page,
    rest,
    running,
    shot,
    sync_api,
    wait_until,
)
from tests.browser.test_web_client import browser as browser

pytestmark = pytest.mark.browser
assert sync_api is not None


def _deliver(cdp: Any, origin: str, registration_id: str, data: dict[str, Any]) -> None:
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": origin, "registrationId": registration_id, "data": json.dumps(data)},
    )


def _notifications(page: Any) -> list[dict[str, Any]]:
    return page.evaluate(
        """async () => (await (await navigator.serviceWorker.ready).getNotifications())
            .map((n) => ({title: n.title, body: n.body, tag: n.tag, conv: n.data && n.data.conv}))"""
    )


def test_service_worker_push_notification_click_and_offline(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    with running(tmp_path_factory, "webpush", HUBBUB_PUSH_ALLOW_HTTP="true") as srv:
        for name in ("ann", "bob"):
            rest(
                srv.url,
                "POST",
                "/auth/register",
                {"username": name, "password": PASSWORD, "nickname": name.title()},
            )
        befriend(srv.url, "ann", "bob")
        ann_id, ann_token = login(srv.url, "ann")
        bob_id, _ = login(srv.url, "bob")
        conv = f"p:{min(ann_id, bob_id)}:{max(ann_id, bob_id)}"
        rest(
            srv.url,
            "POST",
            "/messages",
            {"cmid": "hello-1", "to": bob_id, "type": "text", "body": {"text": "hi Bob"}},
            ann_token,
        )

        errors: list[str] = []
        ctx = browser.new_context(viewport={"width": 1280, "height": 800})
        ctx.grant_permissions(["notifications"], origin=srv.url)
        page = new_page(ctx, errors)
        cdp = ctx.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on("ServiceWorker.workerRegistrationUpdated", lambda e: registrations.extend(e["registrations"]))
        cdp.send("ServiceWorker.enable")
        login_ui(page, srv.url, "bob")

        # The worker is installed and controls the page; the manifest makes the app installable.
        state = page.evaluate("async () => (await navigator.serviceWorker.ready).active.state")
        assert state == "activated"
        with urllib.request.urlopen(f"{srv.url}/manifest.webmanifest", timeout=10) as r:
            manifest = json.loads(r.read())
        assert manifest["display"] == "standalone" and {i["sizes"] for i in manifest["icons"]} == {
            "192x192",
            "512x512",
        }
        wait_until(page, "() => navigator.serviceWorker.controller !== null")

        # Push on, from the profile dialog.
        page.get_by_test_id("me-name").click()
        settings = page.get_by_test_id("push-settings")
        expect(settings).to_be_visible()
        settings.get_by_test_id("push-enable").click()
        page.wait_for_timeout(1500)
        _, bob_token = login(srv.url, "bob")
        devices = rest(srv.url, "GET", "/push/devices", None, bob_token)["devices"]
        if not devices:  # Chromium could not reach its vendor's push service: register a local subscription
            from tests.pushservice import PushService

            key = rest(srv.url, "GET", "/push/key", None, bob_token)["public_key"]
            sub = PushService().subscribe(key)
            rest(srv.url, "POST", "/push/devices", {**sub, "label": "Chrome on Linux"}, bob_token)
            page.keyboard.press("Escape")
            page.get_by_test_id("me-name").click()
        expect(page.get_by_test_id("push-devices")).to_be_visible()
        page.get_by_test_id("push-preview-sender").click()
        expect(page.get_by_test_id("push-preview-sender")).to_have_class(re.compile(r"\bon\b"))
        assert rest(srv.url, "GET", "/push/prefs", None, bob_token)["preview"] == "sender"
        shot(page, "webpush-settings")
        page.keyboard.press("Escape")

        # A push from the push service shows one notification per conversation.
        registration_id = next(
            r["registrationId"] for r in registrations if r["scopeURL"].startswith(srv.url)
        )
        payload = {
            "type": "msg",
            "conv": conv,
            "seq": 1,
            "count": 1,
            "tag": f"conv:{conv}",
            "title": "Ann",
            "body": "hi Bob",
            "mention": False,
        }
        _deliver(cdp, srv.url, registration_id, payload)
        wait_until(
            page, "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length === 1"
        )
        _deliver(cdp, srv.url, registration_id, {**payload, "seq": 2, "count": 2, "body": "are you there?"})
        page.wait_for_timeout(500)
        shown = _notifications(page)
        assert shown == [{"title": "Ann", "body": "are you there? (2)", "tag": f"conv:{conv}", "conv": conv}]

        # A read elsewhere clears it.
        _deliver(cdp, srv.url, registration_id, {"type": "clear", "conv": conv, "tag": f"conv:{conv}"})
        wait_until(
            page, "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length === 0"
        )

        # A click opens the conversation in the open tab.
        _deliver(cdp, srv.url, registration_id, payload)
        wait_until(
            page, "async () => (await (await navigator.serviceWorker.ready).getNotifications()).length === 1"
        )
        worker = next(w for w in ctx.service_workers if w.url.startswith(srv.url))
        worker.evaluate(
            """async () => {
                const [n] = await self.registration.getNotifications()
                self.dispatchEvent(new NotificationEvent('notificationclick', { notification: n }))
            }"""
        )
        expect(page.get_by_test_id("chat-title")).to_contain_text("Ann")
        shot(page, "webpush-opened")

        # Offline: the shell comes from the cache, and the app says it cannot connect.
        ctx.set_offline(True)
        page.reload()
        expect(page.get_by_test_id("conn-status")).to_be_visible()
        shot(page, "webpush-offline")
        ctx.set_offline(False)
        ctx.close()
        # Expected: the refused subscription (Playwright's contexts are incognito, where Chromium has no Push
        # API) and the failed fetches while offline.
        expected = ("ERR_INTERNET_DISCONNECTED", "Failed to fetch", "Push API", "push service", "WebSocket")
        assert [e for e in errors if not any(x in e for x in expected)] == []
