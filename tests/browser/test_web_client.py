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
import io
import json
import os
import re
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
    # A synthetic microphone, allowed without a prompt: the voice-message test records from it.
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
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


def wait_until(page: Any, function: str, arg: Any = None) -> None:
    """``page.wait_for_function`` polls by evaluating the predicate as a string inside the page, which the web
    client's CSP (no ``unsafe-eval``) refuses; ``evaluate`` goes through the debugging protocol, which it
    does not."""
    deadline = time.monotonic() + WAIT_MS / 1000
    while not page.evaluate(function, arg):
        assert time.monotonic() < deadline, f"not within {WAIT_MS} ms: {function}"
        page.wait_for_timeout(50)


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
    a.get_by_test_id("recall-confirm-go").click()  # recall asks first (message actions)
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
            wait_until(
                page,
                f"() => document.querySelectorAll('[data-testid=message][data-seq]').length > {before}"
                " || !!document.querySelector('[data-testid=chat-start]')",
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

        # A second tab has its own device id (issue 15): both stay live, nobody is knocked offline.
        second = new_page(ctx, errors)
        second.goto(page.url)  # the conversation's own URL opens it
        expect(second.get_by_test_id("me-name")).to_have_text("Carol")
        send(second, "From a second tab")
        expect(page.get_by_test_id("message-text").last).to_have_text("From a second tab")
        expect(page.get_by_test_id("conn-status")).to_be_hidden()
        expect(second.get_by_test_id("conn-status")).to_be_hidden()
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


# ---- a group of three, with an image, mentions, receipts and an admin action ----------------------------


def sample_png(width: int = 800, height: int = 560) -> bytes:
    """A small generated landscape (sky, sun, hills) as PNG bytes, so the thumbnail looks like a photo."""
    image = pytest.importorskip("PIL.Image")
    draw_mod = pytest.importorskip("PIL.ImageDraw")
    img = image.new("RGB", (width, height))
    px = img.load()
    for y in range(height):
        f = y / height
        row = (int(255 - 90 * f), int(170 - 60 * f), int(120 + 90 * f))
        for x in range(width):
            px[x, y] = row
    draw = draw_mod.Draw(img)
    draw.ellipse((width * 0.62, height * 0.18, width * 0.78, height * 0.41), fill=(255, 236, 170))
    draw.polygon(
        [(0, height * 0.72), (width * 0.3, height * 0.5), (width * 0.62, height * 0.74), (0, height)],
        fill=(46, 104, 92),
    )
    draw.polygon(
        [(width * 0.35, height), (width * 0.7, height * 0.55), (width, height * 0.7), (width, height)],
        fill=(30, 78, 74),
    )
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def avatar_png(hue: tuple[int, int, int]) -> bytes:
    """A 160 px avatar: a soft two-tone circle pattern in the given colour."""
    image = pytest.importorskip("PIL.Image")
    draw_mod = pytest.importorskip("PIL.ImageDraw")
    img = image.new("RGB", (160, 160), hue)
    draw = draw_mod.Draw(img)
    light = tuple(min(255, v + 70) for v in hue)
    draw.ellipse((40, 22, 120, 102), fill=light)
    draw.ellipse((14, 96, 146, 230), fill=light)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.getvalue()


def login_ui(page: Any, url: str, username: str) -> None:
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.get_by_test_id("auth-submit").click()
    expect(page.get_by_test_id("me-name")).to_be_visible()


def befriend(base: str, a: str, b: str) -> None:
    a_id, a_token = login(base, a)
    b_id, b_token = login(base, b)
    req = rest(base, "POST", "/friends/requests", {"to": b_id}, a_token)
    rest(base, "POST", f"/friends/requests/{req['id']}/accept", None, b_token)


def open_conv(page: Any, conv: str) -> None:
    page.get_by_test_id("tab-chats").click()
    page.locator(f"[data-testid=conversation][data-conv='{conv}']").click()
    expect(page.get_by_test_id("chat-view")).to_have_attribute("data-conv", conv)


def test_group_of_three_with_an_image(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> None:
    """Alice makes a group with Bob and Carol; the three chat, Carol @mentions Bob, Alice sends a photo that
    both see as a thumbnail (and Bob opens in the viewer), read receipts count, and the notice and a mute
    show as system lines."""
    started = time.monotonic()
    with running(tmp_path_factory, "groups") as srv:
        people = {"alice": "Alice", "bob": "Bob", "carol": "Carol"}
        for username, nickname in people.items():
            rest(
                srv.url,
                "POST",
                "/auth/register",
                {"username": username, "password": PASSWORD, "nickname": nickname},
            )
        befriend(srv.url, "alice", "bob")
        befriend(srv.url, "alice", "carol")
        befriend(srv.url, "bob", "carol")

        errors: list[str] = []
        contexts = {
            name: browser.new_context(
                viewport={"width": 1280, "height": 820},
                color_scheme="light",
                permissions=["notifications", "microphone"],
            )
            for name in people
        }
        a, b, c = (new_page(contexts[n], errors) for n in people)
        for page, name in ((a, "alice"), (b, "bob"), (c, "carol")):
            login_ui(page, srv.url, name)

        # -- Bob sets a profile photo (an upload named as his avatar) --------------------------------------
        b.get_by_test_id("open-profile").click()
        b.get_by_test_id("profile-photo-input").set_input_files(
            files=[{"name": "bob.png", "mimeType": "image/png", "buffer": avatar_png((222, 120, 60))}]
        )
        expect(b.get_by_test_id("profile-dialog").get_by_test_id("avatar-img")).to_be_visible()
        b.keyboard.press("Escape")

        # A private chat next to the group in Alice's list.
        alice_id, _ = login(srv.url, "alice")
        _, bob_token = login(srv.url, "bob")
        note = {"cmid": "b-1", "to": alice_id, "type": "text", "body": {"text": "Should I bring the stove?"}}
        rest(srv.url, "POST", "/messages", note, bob_token)
        expect(a.locator("[data-testid=conversation]").first).to_contain_text("Should I bring the stove?")

        # -- Alice creates the group from the sidebar ------------------------------------------------------
        a.get_by_test_id("new-group").click()
        a.get_by_test_id("group-name-new").fill("Weekend hikers")
        a.locator("[data-testid=group-friend][data-username=bob]").click()
        a.locator("[data-testid=group-friend][data-username=carol]").click()
        a.get_by_test_id("group-create").click()
        expect(a.get_by_test_id("chat-title")).to_contain_text("Weekend hikers")
        conv = a.get_by_test_id("chat-view").get_attribute("data-conv")
        assert conv and conv.startswith("g:")
        expect(a.get_by_test_id("system-message").first).to_have_text(
            "You created the group “Weekend hikers” with Bob and Carol"
        )
        expect(a.get_by_test_id("chat-presence")).to_have_text("3 members")

        # -- the others see it live, named, with the notice worded for them ---------------------------------
        for page in (b, c):
            row = page.locator(f"[data-testid=conversation][data-conv='{conv}']")
            expect(row).to_contain_text("Weekend hikers")
            row.click()
        expect(b.get_by_test_id("system-message").first).to_have_text(
            "Alice created the group “Weekend hikers” with you and Carol"
        )

        # -- all three talk; each sees the others' names ---------------------------------------------------
        send(a, "Hi both! Saturday on the ridge?")
        expect(b.get_by_test_id("message-text").last).to_have_text("Hi both! Saturday on the ridge?")
        send(b, "I'm in")
        send(c, "Me too, I'll bring snacks")
        for page in (a, b):
            expect(page.get_by_test_id("message-text").last).to_have_text("Me too, I'll bring snacks")
        expect(a.get_by_test_id("sender-name").last).to_have_text("Carol")
        expect(c.get_by_test_id("sender-name").first).to_have_text("Alice")

        # -- Carol @mentions Bob, who is looking at another chat: his list marks it -------------------------
        b.get_by_test_id("tab-contacts").click()
        b.locator("[data-testid=contact][data-username=alice]").click()
        expect(b.get_by_test_id("chat-title")).to_have_text("Alice")
        box = c.get_by_test_id("composer")
        box.press_sequentially("@Bo", delay=15)
        option = c.locator("[data-testid=mention-option][data-id]").filter(has_text="Bob")
        expect(option).to_be_visible()
        option.click()
        expect(box).to_have_value("@Bob ")
        box.press_sequentially("what time do we meet?", delay=5)
        box.press("Enter")
        expect(box).to_have_value("")
        group_row_b = b.locator(f"[data-testid=conversation][data-conv='{conv}']")
        expect(group_row_b.get_by_test_id("mention-marker")).to_be_visible()
        expect(group_row_b.get_by_test_id("unread")).to_have_text("1")
        group_row_b.click()
        expect(group_row_b.get_by_test_id("mention-marker")).to_have_count(0)
        expect(b.get_by_test_id("message-text").last).to_have_text("@Bob what time do we meet?")

        # -- Alice sends a photo; Bob and Carol see the thumbnail, Bob opens it ------------------------------
        a.get_by_test_id("file-input").set_input_files(
            files=[{"name": "ridge.png", "mimeType": "image/png", "buffer": sample_png()}]
        )
        a.get_by_test_id("preview-send").click()  # photos go through the send preview first
        mine = a.locator("[data-testid=message][data-mine=true][data-type=image]").last
        expect(mine).to_have_attribute("data-delivery", re.compile("sent|read"))
        for page in (b, c):
            thumb = page.locator("[data-testid=message-image] img").last
            expect(thumb).to_be_visible()
            wait_until(page, "el => el.complete && el.naturalWidth > 0", thumb.element_handle())
        b.get_by_test_id("image-thumb").last.click()
        viewer = b.get_by_test_id("viewer-image")
        expect(viewer).to_be_visible()
        wait_until(b, "el => el.complete && el.naturalWidth === 800", viewer.element_handle())
        shot(b, "07-image-viewer")
        b.get_by_test_id("viewer-close").click()
        expect(b.get_by_test_id("image-viewer")).to_have_count(0)

        # -- Bob drops a file on the conversation; Alice gets a card with its name, size and a download link ---
        b.get_by_test_id("chat-view").evaluate(
            """(el) => {
                const dt = new DataTransfer()
                dt.items.add(new File(['<gpx>ridge loop</gpx>'], 'ridge <loop>.gpx', { type: 'application/gpx+xml' }))
                for (const type of ['dragenter', 'dragover', 'drop']) {
                    el.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }))
                }
            }"""
        )
        b.get_by_test_id("preview-send").click()
        card = a.get_by_test_id("message-file").last
        expect(card.get_by_test_id("file-name")).to_have_text("ridge _loop_.gpx")
        expect(card).to_contain_text("21 B")
        href = card.get_by_test_id("file-download").get_attribute("href") or ""
        assert href.startswith("/api/v1/uploads/") and "access_token=" in href, href
        status = a.evaluate("url => fetch(url).then(r => r.status)", href)
        assert status == 200

        # -- read receipts: both others have the group open, so Alice's photo is read by everyone -----------
        send(a, "Sunrise from last time 🌄")
        last = a.locator("[data-testid=message][data-mine=true]").last
        expect(last.get_by_test_id("receipts")).to_be_visible()
        expect(c.get_by_test_id("message-text").last).to_have_text("Sunrise from last time 🌄")
        last.get_by_test_id("receipts").click()
        expect(last.get_by_test_id("receipts")).to_have_text("Read by everyone")

        # -- Alice edits the notice and mutes Carol from the group panel: system lines on every side -------
        a.get_by_test_id("group-info").click()
        panel = a.get_by_test_id("group-panel")
        expect(panel.get_by_test_id("member")).to_have_count(3)
        expect(panel.locator("[data-testid=member][data-username=alice]")).to_have_attribute(
            "data-role", "owner"
        )
        panel.get_by_test_id("group-notice-edit").click()
        panel.get_by_test_id("group-notice-input").fill("Meet 7:00 at the north trailhead")
        panel.get_by_test_id("group-notice-save").click()
        expect(panel.get_by_test_id("group-notice")).to_have_text("Meet 7:00 at the north trailhead")
        expect(b.get_by_test_id("system-message").last).to_have_text(
            "Alice changed the notice to “Meet 7:00 at the north trailhead”"
        )
        expect(b.get_by_test_id("notice-bar")).to_contain_text("north trailhead")
        a.locator("[data-testid=group-panel] input[type=file]").set_input_files(
            files=[{"name": "hikers.png", "mimeType": "image/png", "buffer": avatar_png((40, 140, 110))}]
        )
        expect(b.get_by_test_id("system-message").last).to_have_text("Alice changed the group photo")
        expect(
            b.locator(f"[data-testid=conversation][data-conv='{conv}'] [data-testid=avatar-img]")
        ).to_be_visible()
        expect(
            panel.locator("[data-testid=member][data-username=bob] [data-testid=avatar-img]")
        ).to_be_visible()
        shot(a, "08-group-panel")
        carol_row = panel.locator("[data-testid=member][data-username=carol]")
        carol_row.get_by_test_id("member-actions").click()
        carol_row.locator("[data-action=mute10m]").click()
        expect(carol_row.get_by_test_id("member-muted")).to_be_visible()
        expect(c.get_by_test_id("system-message").last).to_contain_text("Alice muted you until")
        expect(c.get_by_test_id("composer-blocked")).to_contain_text("You are muted")
        carol_row.get_by_test_id("member-actions").click()
        carol_row.locator("[data-action=unmute]").click()
        expect(c.get_by_test_id("composer")).to_be_visible()
        a.get_by_test_id("group-panel-close").click()
        send(c, "Thanks! See you at 7 ⛰️")
        expect(a.get_by_test_id("message-text").last).to_have_text("Thanks! See you at 7 ⛰️")
        expect(a.get_by_test_id("message-image").last).to_be_visible()
        a.get_by_test_id("message-list").evaluate("el => { el.scrollTop = el.scrollHeight }")
        shot(a, "09-group-chat")
        b.get_by_test_id("message-list").evaluate("el => { el.scrollTop = el.scrollHeight }")
        shot(b, "10-group-chat-member")

        # -- the owner recalls a member's message (moderation: no time window) --------------------------------
        send(c, "oops, wrong chat")
        slip = a.locator("[data-testid=message]").filter(has_text="oops, wrong chat")
        slip.locator(".bubble").click(button="right")
        a.get_by_test_id("recall").click()
        a.get_by_test_id("recall-confirm-go").click()
        expect(b.get_by_test_id("recalled").last).to_have_text("Alice recalled a message from Carol")
        expect(c.get_by_test_id("recalled").last).to_have_text("Alice recalled a message from you")

        # -- Carol records a voice message (the fake microphone); Alice can play it --------------------------
        c.get_by_test_id("record").click()
        expect(c.get_by_test_id("recording")).to_be_visible()
        c.wait_for_timeout(1500)
        c.get_by_test_id("record-send").click()
        voice = a.get_by_test_id("message-voice").last
        expect(voice.get_by_test_id("voice-play")).to_be_visible()
        # Its length is known before playing (the client tells the server), and the list says it in words.
        expect(voice.locator(".time")).to_have_text(re.compile(r"0:0[1-4]"))
        group_row_a = a.locator(f"[data-testid=conversation][data-conv='{conv}']")
        expect(group_row_a).to_contain_text(re.compile(r"Voice message 0:0[1-4]"))
        voice.get_by_test_id("voice-play").click()
        wait_until(
            a, "el => parseFloat(el.style.width) > 0", voice.get_by_test_id("voice-fill").element_handle()
        )
        expect(c.locator("[data-testid=message][data-mine=true][data-type=voice]")).to_have_attribute(
            "data-delivery", re.compile("sent|read")
        )

        # -- Carol on a phone, dark theme: the group, the photo, the voice of the others ----------------------
        c.set_viewport_size({"width": 390, "height": 844})
        c.emulate_media(color_scheme="dark")
        expect(c.get_by_test_id("message-image").last).to_be_visible()
        c.get_by_test_id("message-list").evaluate("el => { el.scrollTop = el.scrollHeight }")
        shot(c, "11-mobile-dark-group")

        # -- the phone again, in Chinese: the group panel and the new-group dialog ---------------------------
        c.get_by_test_id("back").click()
        c.get_by_test_id("toggle-locale").click()
        open_conv(c, conv)
        c.get_by_test_id("group-info").click()
        expect(c.get_by_test_id("group-panel")).to_contain_text("群成员")
        shot(c, "12-mobile-dark-panel-zh")
        c.get_by_test_id("group-panel-close").click()
        c.get_by_test_id("back").click()
        c.get_by_test_id("new-group").click()
        expect(c.get_by_test_id("new-group-dialog")).to_be_visible()
        shot(c, "13-mobile-dark-new-group-zh")
        c.keyboard.press("Escape")

        # -- in Chinese the same system lines read naturally -------------------------------------------------
        b.get_by_test_id("toggle-locale").click()
        expect(b.get_by_test_id("system-message").first).to_have_text(
            "Alice创建了群聊“Weekend hikers”，并邀请了你和Carol"
        )

        for ctx in contexts.values():
            ctx.close()
        assert not errors, "\n".join(errors)
    assert time.monotonic() - started < 90 * TIMEOUT_FACTOR
