"""Voice and video calls in the web client (issue 18): two Chromium contexts with fake cameras and microphones
(``--use-fake-device-for-media-stream``) call each other through a real ``hubbub serve``.

- a video call connects and media flows both ways (``getStats()``: inbound RTP bytes grow on both sides),
  mute and camera work, hang-up ends it on both, and the call record appears in both chats; a reload during
  a call shows it as ended;
- the same call forced through a real coturn on loopback (``iceTransportPolicy: "relay"``, the server's
  ``call_force_relay``) with the per-user credentials the server derives: the selected candidate pair is a
  relay on both sides, so the credentials work; and coturn refuses expired ones.

Screenshots of the incoming dialog and the in-call view (desktop and 390x844) go to tests/browser/artifacts/.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from hubbub.services.calls.ice import turn_credentials
from tests.browser.test_web_client import (
    CHROMIUM_ARGS,
    PASSWORD,
    WAIT_MS,
    _chromium,
    expect,
    new_page,
    running,
    shot,
    sync_api,
    wait_until,
)
from tests.turnserver import TurnServer

pytestmark = pytest.mark.browser

#: Every RTCPeerConnection the page makes, so the test can read its stats (the app keeps its own private).
TRACK_PEERS = """
(() => {
  const Original = window.RTCPeerConnection
  window.__pcs = []
  window.RTCPeerConnection = class extends Original {
    constructor(...args) {
      super(...args)
      window.__pcs.push(this)
    }
  }
})()
"""

INBOUND_BYTES = """
async () => {
  let total = 0
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === 'closed') continue
    const stats = await pc.getStats()
    stats.forEach((r) => { if (r.type === 'inbound-rtp') total += r.bytesReceived || 0 })
  }
  return total
}
"""

#: The type of the local candidate of the pair in use ("host", "srflx", "relay").
SELECTED_CANDIDATE = """
async () => {
  for (const pc of window.__pcs || []) {
    if (pc.connectionState === 'closed') continue
    const stats = await pc.getStats()
    let pair = null
    stats.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pair = stats.get(r.selectedCandidatePairId) })
    if (!pair) stats.forEach((r) => { if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded') pair = r })
    if (pair) return stats.get(pair.localCandidateId)?.candidateType || null
  }
  return null
}
"""


def _post(url: str, path: str, body: Any, token: str | None = None) -> Any:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def friends(url: str, a: str, b: str) -> None:
    """Register two users and make them friends, over HTTP (the chat UI is covered by test_web_client)."""
    ta = _post(url, "/api/v1/auth/register", {"username": a, "password": PASSWORD, "nickname": a.title()})
    tb = _post(url, "/api/v1/auth/register", {"username": b, "password": PASSWORD, "nickname": b.title()})
    req = _post(url, "/api/v1/friends/requests", {"to": tb["user"]["id"]}, ta["access_token"])
    _post(url, f"/api/v1/friends/requests/{req['id']}/accept", {}, tb["access_token"])


def login(page: Any, url: str, username: str) -> None:
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("me-name")).to_have_text(username.title())


def open_chat(page: Any, username: str) -> None:
    page.get_by_test_id("tab-contacts").click()
    page.locator(f"[data-testid=contact][data-username={username}]").click()
    expect(page.get_by_test_id("chat-title")).to_have_text(username.title())


def bytes_in(page: Any) -> int:
    return int(page.evaluate(INBOUND_BYTES))


def media_flows(*pages: Any) -> None:
    """Inbound RTP bytes grow on every page (sampled twice, a second apart)."""
    for page in pages:
        wait_until(page, "() => (window.__pcs || []).some((pc) => pc.connectionState === 'connected')")
    before = [bytes_in(p) for p in pages]
    deadline = time.monotonic() + WAIT_MS / 1000
    while True:
        pages[0].wait_for_timeout(500)
        after = [bytes_in(p) for p in pages]
        if all(a > b + 1000 for a, b in zip(after, before, strict=True)):
            return
        assert time.monotonic() < deadline, f"media did not flow both ways: {before} -> {after}"


def place_video_call(caller: Any, callee: Any, callee_name: str) -> None:
    open_chat(caller, callee_name)
    caller.get_by_test_id("call-video").click()
    expect(caller.get_by_test_id("call-overlay")).to_have_attribute("data-phase", "outgoing")
    expect(callee.get_by_test_id("call-incoming")).to_be_visible()
    expect(caller.get_by_test_id("call-status")).to_have_text("Ringing…")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def turn() -> Iterator[TurnServer]:
    server = TurnServer().start()
    try:
        yield server
    finally:
        server.stop()


def two_pages(browser: Any, errors: list[str]) -> tuple[Any, Any, list[Any]]:
    contexts = [browser.new_context(viewport={"width": 1280, "height": 800}) for _ in range(2)]
    pages = []
    for ctx in contexts:
        ctx.add_init_script(TRACK_PEERS)
        pages.append(new_page(ctx, errors))
    return pages[0], pages[1], contexts


def test_a_video_call_connects_hangs_up_and_leaves_a_record(tmp_path_factory, browser) -> None:
    errors: list[str] = []
    with running(tmp_path_factory, "calls") as srv:
        friends(srv.url, "carla", "dario")
        a, b, contexts = two_pages(browser, errors)
        try:
            login(a, srv.url, "carla")
            login(b, srv.url, "dario")
            # Bob is looking at another screen (his contacts): the incoming dialog shows there too.
            b.get_by_test_id("tab-contacts").click()
            place_video_call(a, b, "dario")
            expect(b.get_by_test_id("call-incoming")).to_contain_text("Incoming video call")
            shot(b, "calls-01-incoming")
            b.get_by_test_id("call-accept").click()
            expect(a.get_by_test_id("call-overlay")).to_have_attribute("data-phase", "active")
            expect(b.get_by_test_id("call-overlay")).to_have_attribute("data-phase", "active")
            media_flows(a, b)
            wait_until(a, "() => document.querySelector('[data-testid=remote-video]').videoWidth > 0")
            wait_until(b, "() => document.querySelector('[data-testid=remote-video]').videoWidth > 0")
            expect(a.get_by_test_id("call-status")).to_have_text(re.compile(r"^0:0\d$"))
            expect(a.get_by_test_id("local-video")).to_be_visible()

            # Mute and camera off are shown as pressed; turning them back on restores them.
            a.get_by_test_id("call-mute").click()
            expect(a.get_by_test_id("call-mute")).to_have_attribute("aria-pressed", "true")
            a.get_by_test_id("call-camera").click()
            expect(a.get_by_test_id("call-camera")).to_have_attribute("aria-pressed", "true")
            expect(a.get_by_test_id("local-video")).to_be_hidden()
            a.get_by_test_id("call-camera").click()
            a.get_by_test_id("call-mute").click()
            expect(a.get_by_test_id("call-mute")).to_have_attribute("aria-pressed", "false")
            a.get_by_test_id("call-devices").click()
            expect(a.get_by_test_id("call-devices-panel")).to_be_visible()
            assert a.locator("[data-testid=call-devices-panel] select").count() >= 2
            a.get_by_test_id("call-devices").click()
            a.wait_for_timeout(1200)  # a visible duration in the screenshot
            shot(a, "calls-02-in-call-desktop")
            b.set_viewport_size({"width": 390, "height": 844})
            shot(b, "calls-03-in-call-mobile")

            a.get_by_test_id("call-hangup").click()
            for page in (a, b):
                expect(page.get_by_test_id("call-ended")).to_contain_text("Call ended")
            # The record, in both chats (Bob's open after he dismisses the banner and opens the chat).
            record_a = a.get_by_test_id("message-call").last
            expect(record_a).to_have_attribute("data-kind", "completed")
            expect(record_a).to_contain_text("Video call · 0:0")
            b.get_by_test_id("call-dismiss").click()
            expect(b.get_by_test_id("call-overlay")).to_have_count(0)
            open_chat(b, "carla")
            expect(b.get_by_test_id("message-call").last).to_contain_text("Video call · 0:0")
            shot(b, "calls-04-record-mobile")

            # A reload during a call ends it: the reloaded page says so, the other side sees it end.
            b.set_viewport_size({"width": 1280, "height": 800})
            place_video_call(a, b, "dario")
            b.get_by_test_id("call-accept").click()
            expect(b.get_by_test_id("call-overlay")).to_have_attribute("data-phase", "active")
            b.reload()
            expect(b.get_by_test_id("call-ended")).to_have_attribute("data-reason", "reload")
            expect(b.get_by_test_id("call-ended")).to_contain_text("ended when the page reloaded")
            expect(a.get_by_test_id("call-ended")).to_be_visible()
            expect(a.get_by_test_id("message-call")).to_have_count(2)
        finally:
            for ctx in contexts:
                ctx.close()
    assert not [e for e in errors if "pageerror" in e], errors


def test_a_call_forced_through_coturn_uses_the_relay(tmp_path_factory, browser, turn) -> None:
    errors: list[str] = []
    env = {
        "HUBBUB_CALL_TURN_URLS": turn.url,
        "HUBBUB_CALL_TURN_SECRET": turn.secret,
        "HUBBUB_CALL_FORCE_RELAY": "true",
    }
    with running(tmp_path_factory, "calls-relay", **env) as srv:
        friends(srv.url, "erin", "femi")
        a, b, contexts = two_pages(browser, errors)
        try:
            login(a, srv.url, "erin")
            login(b, srv.url, "femi")
            place_video_call(a, b, "femi")
            b.get_by_test_id("call-accept").click()
            expect(a.get_by_test_id("call-overlay")).to_have_attribute("data-phase", "active")
            media_flows(a, b)
            assert a.evaluate(SELECTED_CANDIDATE) == "relay"
            assert b.evaluate(SELECTED_CANDIDATE) == "relay"
            policy = a.evaluate("() => window.__pcs[0].getConfiguration().iceTransportPolicy")
            assert policy == "relay"
            b.get_by_test_id("call-hangup").click()
            expect(a.get_by_test_id("call-ended")).to_be_visible()
        finally:
            for ctx in contexts:
                ctx.close()


def test_coturn_accepts_the_servers_credentials_until_they_expire(turn) -> None:
    now = int(time.time())
    assert turn.allocate(*turn_credentials(turn.secret, 42, now + 600)) == 0
    assert turn.allocate(*turn_credentials(turn.secret, 42, now - 1)) == 401  # expired
    assert turn.allocate(*turn_credentials("not-the-secret", 42, now + 600)) == 401
    username, password = turn_credentials(turn.secret, 42, now + 600)
    assert turn.allocate(username.replace(":42", ":43"), password) == 401  # another user's name
