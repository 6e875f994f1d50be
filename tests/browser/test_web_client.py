"""The web client end to end: two people in two browser contexts of a real headless Chromium, talking
through a real ``hubbub serve`` process.

The story: Alice and Bob register, Alice finds Bob and sends a friend request, Bob accepts; they chat both
ways (a link, read receipts, typing); Bob closes his tab and Alice sees him go offline; Alice writes while he
is away; Bob comes back on a phone-sized screen in the dark theme and finds every message exactly once;
Alice recalls one and Bob sees it recalled.

Screenshots of the main screens go to ``tests/browser/artifacts/`` (git-ignored).
Uses the system Chromium (``apt-get install chromium``); Playwright's own browser download is never used.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (in the test extras)")

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
DIST_INDEX = ROOT / "src" / "hubbub" / "webui" / "dist" / "index.html"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_FACTOR = float(os.environ.get("HUBBUB_TEST_TIMEOUT_FACTOR", "1"))
WAIT_MS = int(10_000 * TIMEOUT_FACTOR)
PASSWORD = "correct-horse-battery"


def _chromium() -> str:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.skip("Chromium is not installed (apt-get install chromium); the browser test needs the system one")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubbubServer:
    """One `hubbub serve` process on a fixed free port and data directory; `restart()` keeps both."""

    def __init__(self, data_dir: Path, name: str, **env: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = ARTIFACTS / f"server-{name}.log"
        self.env = {
            **os.environ,
            # Cheap password hashing and no login throttling: these tests register and log in quickly.
            "HUBBUB_ARGON2_TIME_COST": "1",
            "HUBBUB_ARGON2_MEMORY_KIB": "256",
            "HUBBUB_LOGIN_BURST": "1000",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> HubbubServer:
        args = [sys.executable, "-m", "hubbub", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        args += ["--data-dir", str(self.data_dir)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        deadline = time.monotonic() + 20 * TIMEOUT_FACTOR
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hubbub serve exited with {self.proc.returncode}; see {self.log_path}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as r:
                if r.status == 200:
                    return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"hubbub serve did not become healthy in time; see {self.log_path}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextlib.contextmanager
def running(tmp_path_factory: pytest.TempPathFactory, name: str, **env: str) -> Iterator[HubbubServer]:
    assert DIST_INDEX.is_file(), (
        "the web client is not built: npm --prefix web ci && npm --prefix web run build"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    srv = HubbubServer(tmp_path_factory.mktemp(f"hubbub-{name}"), name, **env)
    try:
        yield srv.start()
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `hubbub serve` on a free port with a fresh data directory; yields its base URL."""
    with running(tmp_path_factory, "story") as srv:
        yield srv.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = _chromium()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# ---- helpers -------------------------------------------------------------------------------------------


def expect(locator: Any) -> Any:
    return sync_api.expect(locator)


sync_api.expect.set_options(timeout=WAIT_MS)


def shot(page: Any, name: str) -> None:
    page.wait_for_timeout(250)  # let transitions settle
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def new_page(context: Any, errors: list[str]) -> Any:
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    page.on("console", lambda m: errors.append(f"console.error: {m.text}") if m.type == "error" else None)
    return page


def register(page: Any, url: str, username: str, nickname: str) -> None:
    page.goto(url)
    page.get_by_test_id("to-register").click()
    page.fill("input[name=username]", username)
    page.fill("input[name=nickname]", nickname)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("me-name")).to_have_text(nickname)


def send(page: Any, text: str) -> None:
    box = page.get_by_test_id("composer")
    box.fill(text)
    box.press("Enter")
    expect(box).to_have_value("")


def texts(page: Any) -> list[str]:
    return [t.strip() for t in page.get_by_test_id("message-text").all_inner_texts()]


def seqs(page: Any) -> list[int]:
    values = page.eval_on_selector_all(
        "[data-testid=message][data-seq]", "els => els.map(e => Number(e.dataset.seq))"
    )
    return [int(v) for v in values]


# ---- the story -----------------------------------------------------------------------------------------


def test_two_people_befriend_chat_and_catch_up(server: str, browser: Any) -> None:
    started = time.monotonic()
    errors: list[str] = []
    ctx_a = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="light", permissions=["notifications"]
    )
    ctx_b = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="light", permissions=["notifications"]
    )
    a = new_page(ctx_a, errors)
    b = new_page(ctx_b, errors)

    # -- register -----------------------------------------------------------------------------------------
    a.goto(server)
    expect(a.get_by_test_id("auth-form")).to_be_visible()
    shot(a, "01-login")
    register(a, server, "alice", "Alice")
    register(b, server, "bob", "Bob")

    # -- Alice finds Bob and sends a request; Bob sees it live and accepts ------------------------------------
    a.get_by_test_id("tab-contacts").click()
    a.get_by_test_id("user-search").fill("bo")
    result = a.locator("[data-testid=search-result][data-username=bob]")
    result.get_by_test_id("add-friend").click()
    a.get_by_test_id("friend-note").fill("Hi Bob, it's Alice")
    a.get_by_test_id("send-request").click()
    expect(result).to_contain_text("Requested")

    expect(b.get_by_test_id("request-count")).to_have_text("1")
    b.get_by_test_id("tab-contacts").click()
    request = b.get_by_test_id("friend-request")
    expect(request).to_contain_text("Hi Bob, it's Alice")
    shot(b, "02-friend-request")
    request.get_by_test_id("accept").click()
    expect(b.locator("[data-testid=contact][data-username=alice]")).to_be_visible()

    # Alice's contact list gets Bob without a reload, online.
    a.get_by_test_id("user-search").fill("")
    bob_contact = a.locator("[data-testid=contact][data-username=bob]")
    expect(bob_contact).to_have_attribute("data-online", "true")

    # -- chat both ways -------------------------------------------------------------------------------------
    bob_contact.click()
    expect(a.get_by_test_id("chat-title")).to_have_text("Bob")
    expect(a.get_by_test_id("chat-presence")).to_have_attribute("data-online", "true")
    send(a, "Hi Bob! 👋 Notes are at https://example.com/notes")
    mine = a.locator("[data-testid=message][data-mine=true]").last
    expect(mine).to_have_attribute("data-delivery", "sent")

    b.get_by_test_id("tab-chats").click()
    conv_b = b.get_by_test_id("conversation").first
    expect(conv_b.get_by_test_id("unread")).to_have_text("1")
    conv_b.click()
    link = b.locator("[data-testid=message-text] a").first
    expect(link).to_have_attribute("href", "https://example.com/notes")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_attribute("target", "_blank")
    # Bob has it open: Alice's tick turns to "read".
    expect(mine).to_have_attribute("data-delivery", "read")

    # Typing shows on the other side; then the message arrives and the indicator goes.
    b.get_by_test_id("composer").press_sequentially("Hey", delay=20)
    expect(a.get_by_test_id("chat-presence")).to_have_text("typing…")
    b.get_by_test_id("composer").fill("")
    send(b, "Hey Alice, <b>not bold</b> & fine")
    expect(a.get_by_test_id("message-text").last).to_have_text("Hey Alice, <b>not bold</b> & fine")
    assert a.locator("[data-testid=message-text] b").count() == 0, "user text must never become markup"
    send(a, "Great, talk later")
    expect(b.get_by_test_id("message-text").last).to_have_text("Great, talk later")
    shot(a, "03-chat-light")

    # -- Bob leaves: Alice sees him go offline, and writes while he is away ------------------------------------
    b.close()
    expect(a.get_by_test_id("chat-presence")).to_have_attribute("data-online", "false")
    away = [f"While you were away #{i}" for i in range(1, 4)]
    for text in away:
        send(a, text)
    expect(a.locator("[data-testid=message][data-mine=true]").last).to_have_attribute("data-delivery", "sent")

    # -- Bob comes back on a phone, dark theme, still logged in ------------------------------------------------
    b = new_page(ctx_b, errors)
    b.set_viewport_size({"width": 390, "height": 844})
    b.emulate_media(color_scheme="dark")
    b.goto(server)
    expect(b.get_by_test_id("me-name")).to_have_text("Bob")
    expect(a.get_by_test_id("chat-presence")).to_have_attribute("data-online", "true")
    conv_b = b.get_by_test_id("conversation").first
    expect(conv_b.get_by_test_id("unread")).to_have_text("3")
    expect(conv_b).to_contain_text(away[-1])
    shot(b, "04-mobile-dark-list")
    conv_b.click()
    expect(b.get_by_test_id("message-text").last).to_have_text(away[-1])
    expect(b.get_by_test_id("message-text").first).to_contain_text("Hi Bob!")
    got = texts(b)
    for text in [*away, "Great, talk later", "Hey Alice, <b>not bold</b> & fine"]:
        assert got.count(text) == 1, f"{text!r} shown {got.count(text)} times in {got}"
    numbers = seqs(b)
    assert numbers == list(range(1, len(numbers) + 1)), f"seqs not contiguous and unique: {numbers}"
    assert len(numbers) == 6
    # Reading on the phone clears the badge for Alice's receipts too.
    expect(a.locator("[data-testid=message][data-mine=true]").last).to_have_attribute("data-delivery", "read")
    shot(b, "05-mobile-dark-chat")

    # -- Alice recalls her last message; Bob sees it recalled --------------------------------------------------
    a.locator("[data-testid=message][data-mine=true]").last.locator(".bubble").click(button="right")
    a.get_by_test_id("recall").click()
    expect(a.get_by_test_id("recalled")).to_have_text("You recalled a message")
    expect(b.get_by_test_id("recalled")).to_have_text("Alice recalled a message")
    assert away[-1] not in texts(b)

    # -- and Bob's reply still goes through from the phone ------------------------------------------------------
    send(b, "Back now, got all three")
    expect(a.get_by_test_id("message-text").last).to_have_text("Back now, got all three")
    shot(a, "06-chat-after-recall")

    # -- the Chinese UI is one click away, and remembered --------------------------------------------------------
    a.get_by_test_id("toggle-locale").click()
    expect(a.get_by_test_id("tab-chats")).to_contain_text("聊天")
    expect(a.get_by_test_id("recalled")).to_have_text("你撤回了一条消息")
    a.reload()
    expect(a.get_by_test_id("tab-contacts")).to_contain_text("联系人")

    ctx_a.close()
    ctx_b.close()
    assert not errors, "\n".join(errors)
    assert time.monotonic() - started < 60 * TIMEOUT_FACTOR


# ---- scroll-back, token expiry and a server restart ----------------------------------------------------


def rest(base: str, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"{base}/api/v1{path}", data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=10) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


def login(base: str, username: str) -> tuple[int, str]:
    t = rest(base, "POST", "/auth/login", {"username": username, "password": PASSWORD})
    return int(t["user"]["id"]), str(t["access_token"])


def test_scroll_back_survive_token_expiry_and_server_restart(
    tmp_path_factory: pytest.TempPathFactory, browser: Any
) -> None:
    """Carol has 130 messages waiting; she scrolls back to the first, outlives her access token (4 s here),
    and the server restarts under her: the client refreshes, reconnects, syncs, and shows each message once."""
    with running(tmp_path_factory, "restart", HUBBUB_ACCESS_TOKEN_TTL_S="4") as srv:
        for name in ("carol", "dave"):
            rest(
                srv.url,
                "POST",
                "/auth/register",
                {"username": name, "password": PASSWORD, "nickname": name.title()},
            )
        carol_id, carol_token = login(srv.url, "carol")
        _, dave_token = login(srv.url, "dave")
        req = rest(srv.url, "POST", "/friends/requests", {"to": carol_id}, dave_token)
        rest(srv.url, "POST", f"/friends/requests/{req['id']}/accept", None, carol_token)

        def dave_says(*lines: str) -> None:
            _, token = login(srv.url, "dave")
            for line in lines:
                body = {"cmid": f"d-{line}", "to": carol_id, "type": "text", "body": {"text": line}}
                rest(srv.url, "POST", "/messages", body, token)

        backlog = [f"Backlog {i}" for i in range(1, 131)]
        dave_says(*backlog)

        errors: list[str] = []
        ctx = browser.new_context(viewport={"width": 1100, "height": 760}, permissions=["notifications"])
        page = new_page(ctx, errors)
        page.goto(srv.url)
        page.fill("input[name=username]", "carol")
        page.fill("input[name=password]", PASSWORD)
        page.get_by_test_id("auth-submit").click()
        conv = page.get_by_test_id("conversation").first
        expect(conv.get_by_test_id("unread")).to_have_text("99+")
        expect(page).to_have_title("(99+) Hubbub")
        conv.click()
        expect(page.get_by_test_id("message-text").last).to_have_text("Backlog 130")
        expect(page).to_have_title("Hubbub")

        # Scroll back page by page until the beginning.
        listing = page.get_by_test_id("message-list")
        for _ in range(10):
            if page.get_by_test_id("chat-start").is_visible():
                break
            before = len(seqs(page))
            listing.evaluate("el => { el.scrollTop = 0 }")
            page.wait_for_function(
                f"document.querySelectorAll('[data-testid=message][data-seq]').length > {before}"
                " || !!document.querySelector('[data-testid=chat-start]')"
            )
        expect(page.get_by_test_id("chat-start")).to_be_visible()
        assert seqs(page) == list(range(1, 131))
        assert texts(page) == backlog
        page.get_by_test_id("jump-latest").click()
        expect(page.get_by_test_id("jump-latest")).to_be_hidden()

        # The access token expires; pushes keep coming, and REST calls refresh it first.
        page.wait_for_timeout(4500)
        dave_says("After expiry")
        expect(page.get_by_test_id("message-text").last).to_have_text("After expiry")
        page.get_by_test_id("tab-contacts").click()
        page.get_by_test_id("user-search").fill("dav")
        expect(page.locator("[data-testid=search-result][data-username=dave]")).to_be_visible()
        page.get_by_test_id("tab-chats").click()

        # The server restarts: the banner shows, the client reconnects by itself and catches up.
        srv.stop()
        expect(page.get_by_test_id("conn-status")).to_be_visible()
        srv.start()
        dave_says("After restart 1", "After restart 2")
        expect(page.get_by_test_id("message-text").last).to_have_text("After restart 2", timeout=WAIT_MS * 2)
        expect(page.get_by_test_id("conn-status")).to_be_hidden()
        send(page, "All here")
        expect(page.locator("[data-testid=message][data-mine=true]").last).to_have_attribute(
            "data-delivery", "sent"
        )
        expect(page.get_by_test_id("me-name")).to_have_text("Carol")  # never logged out on the way

        got = texts(page)
        assert got == [*backlog, "After expiry", "After restart 1", "After restart 2", "All here"]
        assert seqs(page) == list(range(1, 135))

        # A second tab of the same terminal takes over (4409); the first offers "Use here" and takes it back.
        second = new_page(ctx, errors)
        second.goto(srv.url)
        expect(second.get_by_test_id("me-name")).to_have_text("Carol")
        banner = page.get_by_test_id("conn-status")
        expect(banner).to_contain_text("another tab")
        banner.get_by_role("button").click()
        expect(banner).to_be_hidden()
        expect(second.get_by_test_id("conn-status")).to_contain_text("another tab")
        second.close()

        # Log out: back to the login form, and a reload stays logged out.
        page.get_by_test_id("open-profile").click()
        page.get_by_test_id("logout").click()
        expect(page.get_by_test_id("auth-form")).to_be_visible()
        page.reload()
        expect(page.get_by_test_id("auth-form")).to_be_visible()
        ctx.close()
        # While the server was down the browser logs its refused connections; anything else is a bug.
        unexpected = [e for e in errors if "net::ERR_CONNECTION_REFUSED" not in e]
        assert not unexpected, "\n".join(unexpected)
