"""Abuse limits, each with its documented refusal (docs/security.md, "Abuse limits")."""

from __future__ import annotations

import asyncio
import struct
import threading
import time
import zlib

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from tests.conftest import PASSWORD, TIMEOUT_FACTOR, base_url
from tests.security.conftest import RELAXED


async def post(
    url: str, path: str, body: object, token: str | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    async with aiohttp.ClientSession() as http:
        async with http.post(url + path, json=body, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


async def upload(client: HubbubClient, data: bytes = b"hello\n") -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with client.http.post(
        client.base_url + "/api/v1/uploads", data=data, params={"kind": "file", "name": "a.txt"}, headers=headers
    ) as resp:
        return resp.status, await resp.json(content_type=None)


def assert_limited(status: int, body: dict) -> None:
    assert status == 429, body
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["retry_after"] > 0


async def registered(url: str, name: str) -> HubbubClient:
    client = HubbubClient(url)
    await client.register(name, PASSWORD)
    return client


# -- per IP -----------------------------------------------------------------------------------------
async def test_login_attempts_are_limited_per_ip_whatever_the_username(make_node):
    url = base_url(await make_node(login_ip_burst=3, login_ip_per_minute=1))
    answers = [await post(url, "/api/v1/auth/login", {"username": f"guess{i}", "password": "x" * 8}) for i in range(4)]
    assert [s for s, _ in answers[:3]] == [401, 401, 401]
    assert_limited(*answers[3])


async def test_login_attempts_are_limited_per_username(make_node):
    url = base_url(await make_node(login_burst=2, login_per_minute=1, ip_limit_exempt="127.0.0.0/8"))
    answers = [await post(url, "/api/v1/auth/login", {"username": "victim", "password": f"p{i}" * 8}) for i in range(3)]
    assert [s for s, _ in answers[:2]] == [401, 401]
    assert_limited(*answers[2])


async def test_strangers_cannot_lock_the_owner_out(make_node):
    # Login limits are per (username, address): ten wrong guesses from elsewhere use up the guessers'
    # allowance, and the owner, from their own address, still gets in at once.
    url = base_url(await make_node(login_burst=3, login_per_minute=1, trusted_proxies="127.0.0.1"))
    await (await registered(url, "lockvictim")).close()
    stranger = {"X-Forwarded-For": "203.0.113.7"}
    answers = [
        await post(url, "/api/v1/auth/login", {"username": "lockvictim", "password": f"guess-{i}"}, headers=stranger)
        for i in range(10)
    ]
    assert [s for s, _ in answers[:3]] == [401, 401, 401]
    assert_limited(*answers[3])
    for i in range(10):  # many strangers: each limited on its own
        await post(url, "/api/v1/auth/login", {"username": "LockVictim", "password": "nope-nope"},
                   headers={"X-Forwarded-For": f"198.51.100.{i}"})
    owner = {"X-Forwarded-For": "192.0.2.44"}
    status, body = await post(url, "/api/v1/auth/login", {"username": "lockvictim", "password": PASSWORD}, headers=owner)
    assert status == 200, body
    # ...and the per-address limit still stops one address spraying many usernames.
    url = base_url(await make_node(login_ip_burst=3, login_ip_per_minute=1, trusted_proxies="127.0.0.1"))
    sprays = [
        await post(url, "/api/v1/auth/login", {"username": f"spray{i}", "password": "x" * 8}, headers=stranger)
        for i in range(4)
    ]
    assert_limited(*sprays[3])


async def test_password_changes_are_limited_per_session_and_user(make_node):
    url = base_url(await make_node(**RELAXED, password_change_burst=3, password_change_per_hour=1))
    alice = await registered(url, "pwguesser")
    try:
        change = {"old_password": "wrong-guess", "new_password": "plum-kettle-42"}
        answers = [await post(url, "/api/v1/auth/password", change, alice.access_token) for _ in range(40)]
        assert [s for s, _ in answers[:3]] == [401, 401, 401]
        assert all(s == 429 for s, _ in answers[3:]), [s for s, _ in answers]
        assert_limited(*answers[3])
        # Another session of the same user has its own allowance, up to the user's (twice a session's).
        other = HubbubClient(url)
        await other.login("pwguesser", PASSWORD)
        try:
            more = await asyncio.gather(
                *(post(url, "/api/v1/auth/password", change, other.access_token) for _ in range(24))
            )
            statuses = [s for s, _ in more]
            # 24 at once: only the user's remaining allowance reaches the password hasher, the rest is
            # refused before any hashing (it was 24 argon2 hashes slowing everyone's logins).
            assert statuses.count(401) == 3 and statuses.count(429) == 21, statuses
        finally:
            await other.close()
    finally:
        await alice.close()


async def test_registrations_are_limited_per_ip(make_node):
    url = base_url(await make_node(register_ip_burst=2, register_ip_per_hour=1))
    answers = [await post(url, "/api/v1/auth/register", {"username": f"farm{i}", "password": PASSWORD}) for i in range(3)]
    assert [s for s, _ in answers[:2]] == [201, 201]
    assert_limited(*answers[2])


async def test_exempt_networks_and_trusted_proxies(make_node):
    # Behind a trusted proxy the limit follows X-Forwarded-For, so one client is limited and another is not.
    url = base_url(await make_node(register_ip_burst=1, register_ip_per_hour=1, trusted_proxies="127.0.0.1"))
    first = await post(url, "/api/v1/auth/register", {"username": "viaproxy1", "password": PASSWORD},
                       headers={"X-Forwarded-For": "203.0.113.7"})
    again = await post(url, "/api/v1/auth/register", {"username": "viaproxy2", "password": PASSWORD},
                       headers={"X-Forwarded-For": "203.0.113.7"})
    other = await post(url, "/api/v1/auth/register", {"username": "viaproxy3", "password": PASSWORD},
                       headers={"X-Forwarded-For": "198.51.100.9"})
    assert first[0] == 201 and other[0] == 201
    assert_limited(*again)
    # Without trust, a forged header changes nothing: the socket's address is the client.
    url = base_url(await make_node(register_ip_burst=1, register_ip_per_hour=1))
    await post(url, "/api/v1/auth/register", {"username": "forger1", "password": PASSWORD})
    forged = await post(url, "/api/v1/auth/register", {"username": "forger2", "password": PASSWORD},
                        headers={"X-Forwarded-For": "192.0.2.1"})
    assert_limited(*forged)


async def test_uploads_are_limited_per_user_and_per_ip(make_node):
    url = base_url(await make_node(ip_limit_exempt="", register_ip_burst=100, upload_burst=2, upload_ip_burst=4,
                                   upload_per_minute=0.01, upload_ip_per_minute=0.01))
    alice, bob = await registered(url, "upalice"), await registered(url, "upbob")
    try:
        assert (await upload(alice))[0] == 201
        assert (await upload(alice))[0] == 201
        assert_limited(*await upload(alice))  # alice's own bucket
        # Bob has his own bucket, but the address has had 3 attempts (refused ones count) of its 4.
        assert (await upload(bob))[0] == 201
        assert_limited(*await upload(bob))
    finally:
        await alice.close()
        await bob.close()


# -- per user -----------------------------------------------------------------------------------------
async def test_sends_are_limited_per_user(make_node):
    node = await make_node(**{**RELAXED, "send_burst": 3, "send_rate": 0.01})
    url = base_url(node)
    alice, bob = await registered(url, "sendalice"), await registered(url, "sendbob")
    try:
        await alice.befriend(bob)
        await alice.connect()
        for i in range(3):
            await alice.send_text(f"m{i}", to=bob.user_id)
        with pytest.raises(ApiError) as limited:
            await alice.request({"type": "send", "cmid": "over", "to": bob.user_id, "msg_type": "text", "body": {"text": "x"}})
        assert limited.value.code == "rate_limited" and limited.value.retry_after
    finally:
        await alice.close()
        await bob.close()


async def test_friend_requests_are_limited_per_user(make_node):
    url = base_url(await make_node(**RELAXED))
    asker = await registered(url, "asker")
    others = [await registered(url, f"target{i}") for i in range(21)]
    try:
        for other in others[:20]:
            await asker.api("POST", "/api/v1/friends/requests", {"to": other.user_id})
        with pytest.raises(ApiError) as limited:
            await asker.api("POST", "/api/v1/friends/requests", {"to": others[20].user_id})
        assert (limited.value.status, limited.value.code) == (429, "rate_limited")
    finally:
        for client in (asker, *others):
            await client.close()


# -- connections ----------------------------------------------------------------------------------
async def test_websocket_connections_are_capped_per_ip_before_the_upgrade(make_node):
    url = base_url(await make_node(max_ws_per_ip=2))
    ws_url = url.replace("http", "ws") + "/ws"
    async with aiohttp.ClientSession() as http:
        first, second = await http.ws_connect(ws_url), await http.ws_connect(ws_url)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(ws_url)
        assert refused.value.status == 429
        async with http.get(ws_url, headers={"Connection": "Upgrade", "Upgrade": "websocket"}) as resp:
            assert resp.status == 429 and (await resp.json())["error"]["code"] == "rate_limited"
        await first.close()
        await asyncio.sleep(0.1)
        third = await http.ws_connect(ws_url)  # a slot was freed
        await third.close()
        await second.close()


async def test_websocket_connections_are_capped_per_user(make_node):
    url = base_url(await make_node(**RELAXED, max_ws_per_user=1))
    alice = await registered(url, "capalice")
    try:
        async with aiohttp.ClientSession() as http:
            ws_url = url.replace("http", "ws") + "/ws"
            web = await http.ws_connect(ws_url)
            await web.send_json({"type": "auth", "token": alice.access_token, "terminal": "web"})
            assert (await web.receive_json(timeout=5))["type"] == "auth_ok"
            mobile = await http.ws_connect(ws_url)
            await mobile.send_json({"type": "auth", "token": alice.access_token, "terminal": "mobile", "rid": 1})
            error = await mobile.receive_json(timeout=5)
            assert (error["type"], error["code"], error["rid"]) == ("error", "rate_limited", 1)
            await mobile.receive(timeout=5)
            assert mobile.close_code == 4530
            # The same terminal is a replacement, not an extra connection: allowed, and the old one gets 4409.
            web2 = await http.ws_connect(ws_url)
            await web2.send_json({"type": "auth", "token": alice.access_token, "terminal": "web"})
            assert (await web2.receive_json(timeout=5))["type"] == "auth_ok"
            closing = await web.receive(timeout=5)  # the code the server sent (the TCP close may win the echo)
            assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 4409)
            await web2.close()
    finally:
        await alice.close()


# -- sizes ----------------------------------------------------------------------------------------
async def test_oversized_frames_and_bodies(make_node):
    node = await make_node(**RELAXED, max_frame_bytes=2048, max_body_bytes=4096)
    url = base_url(node)
    alice = await registered(url, "bigalice")
    try:
        status, body = await post(url, "/api/v1/users", {"x": "y" * 5000}, alice.access_token)
        assert status in (405, 413)  # GET-only route: the method may be refused first
        status, body = await post(url, "/api/v1/groups", {"name": "n", "notice": "y" * 5000}, alice.access_token)
        assert (status, body["error"]["code"]) == (413, "too_large")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url.replace("http", "ws") + "/ws")
            await ws.send_json({"type": "auth", "token": alice.access_token, "terminal": "web"})
            assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
            await ws.send_str('{"type":"ping","pad":"' + "x" * 4096 + '"}')
            await ws.receive(timeout=5)
            assert ws.close_code == 1009
        assert (await alice.api("GET", "/api/v1/me"))["id"] == alice.user_id  # and the server serves on
    finally:
        await alice.close()


# -- slow clients -----------------------------------------------------------------------------------
async def _closed_after(reader: asyncio.StreamReader, limit: float) -> tuple[float, bytes]:
    started = time.monotonic()
    data = b""
    try:
        while chunk := await asyncio.wait_for(reader.read(65536), limit):
            data += chunk
    except ConnectionResetError:
        pass
    return time.monotonic() - started, data


async def test_slow_loris_headers_are_cut_off(make_node):
    node = await make_node(http_keepalive_s=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")

    async def trickle() -> None:
        for i in range(40):  # 12 s of headers, one every 0.3 s
            await asyncio.sleep(0.3)
            if writer.is_closing():
                return
            writer.write(f"X-Slow-{i}: y\r\n".encode())

    task = asyncio.create_task(trickle())
    elapsed, data = await _closed_after(reader, 10 * TIMEOUT_FACTOR)
    task.cancel()
    writer.close()
    assert elapsed < 4 * TIMEOUT_FACTOR, f"a trickling client was kept {elapsed:.1f} s"
    assert b"200 OK" not in data

    # A connection that says nothing at all is closed too; a healthy client is served meanwhile.
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    async with aiohttp.ClientSession() as http, http.get(base_url(node) + "/healthz") as resp:
        assert resp.status == 200
    elapsed, _ = await _closed_after(reader, 10 * TIMEOUT_FACTOR)
    writer.close()
    assert elapsed < 4 * TIMEOUT_FACTOR


async def test_slow_body_gets_408(make_node):
    node = await make_node(http_body_timeout_s=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(
        b"POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100\r\n\r\n{\"username\":"
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5 * TIMEOUT_FACTOR)
    assert head.startswith(b"HTTP/1.1 408"), head
    writer.close()


# -- hostile media (issues 12.13, 12.14) ------------------------------------------------------------
def _ebml(ident: int, payload: bytes) -> bytes:
    id_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return id_bytes + (0x0100000000000000 | len(payload)).to_bytes(8, "big") + payload


def crafted_webm(megabytes: int, inside_info: bool) -> bytes:
    """A Segment of unknown size full of empty 2-byte Void elements (at the top, or inside Info)."""
    filler = b"\xec\x80" * (megabytes * 1024 * 1024 // 2)
    segment = b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"
    body = _ebml(0x1549A966, filler) if inside_info else filler
    return _ebml(0x1A45DFA3, _ebml(0x4282, b"webm")) + segment + body


def crafted_mp4(megabytes: int) -> bytes:
    """A movie box full of empty 8-byte boxes and no movie header."""
    def box(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I4s", 8 + len(payload), kind) + payload

    empties = box(b"free", b"") * (megabytes * 1024 * 1024 // 8)
    return box(b"ftyp", b"isom\0\0\x02\0isomiso2mp41") + box(b"moov", empties)


def png_of(width: int, height: int, exif: bytes = b"") -> bytes:
    """A greyscale PNG of one colour, compressed row by row (never held decoded in the test)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    squeeze = zlib.compressobj(9)
    row = b"\0" * (width + 1)
    idat = b"".join(squeeze.compress(row) for _ in range(height)) + squeeze.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    extra = chunk(b"eXIf", exif) if exif else b""
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


async def raw_upload(client: HubbubClient, kind: str, data: bytes) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {client.access_token}"}
    async with client.http.post(
        client.base_url + "/api/v1/uploads", data=data, params={"kind": kind}, headers=headers
    ) as resp:
        return resp.status, await resp.json(content_type=None)


@pytest.mark.parametrize(
    "data", [crafted_webm(5, False), crafted_webm(5, True), crafted_mp4(5)], ids=["webm", "webm-info", "mp4"]
)
async def test_crafted_containers_cost_a_bounded_amount_of_work(make_node, data: bytes):
    """Issue 12.13: a 5 MB WebM of empty 2-byte elements cost ~1 s of CPU per MB in the duration reader.
    The reader now counts its steps and bytes: the work is bounded whatever the file's size (asserted on
    the count, not on wall time)."""
    from hubbub.services.media_probe import MAX_PROBE_STEPS, MAX_READ_BYTES

    node = await make_node(**RELAXED)
    alice = await registered(base_url(node), "crafter")
    try:
        work = node.services.media.probe_work
        before = (work.elements, work.bytes_read)
        status, body = await raw_upload(alice, "video", data)
        assert (status, body["error"]["code"]) == (422, "bad_media"), body
        elements, read = work.elements - before[0], work.bytes_read - before[1]
        assert 0 < elements <= MAX_PROBE_STEPS + 1 and read <= MAX_READ_BYTES
        assert elements < len(data) // 100  # the old reader took a step per 2 bytes
    finally:
        await alice.close()


async def test_decompression_bombs_are_refused_by_pixels_per_byte(make_node):
    """Issue 12.14: a ~160 KB PNG of 7000x7000 with an EXIF orientation decoded for 2-3 s and ~380 MB. Above
    12 megapixels an image may have at most 64 pixels per byte of its file: refused before any decoding."""
    node = await make_node(**RELAXED)
    alice = await registered(base_url(node), "bomber")
    try:
        exif = b"MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0"  # orientation 6
        bomb = png_of(7000, 7000, exif)
        assert len(bomb) < 200_000
        work = node.services.media.probe_work
        before = work.elements
        status, body = await raw_upload(alice, "image", bomb)
        assert (status, body["error"]["code"]) == (413, "too_large"), body
        assert "pixels" in body["error"]["message"]
        assert work.elements - before <= 10  # stripped chunk by chunk, refused before a pixel was decoded
        # Under the free pixel count, a well-compressed image is fine whatever its ratio.
        status, body = await raw_upload(alice, "image", png_of(2000, 1500, exif))
        assert status == 201 and (body["width"], body["height"]) == (1500, 2000), body
    finally:
        await alice.close()


async def test_media_work_has_its_own_bounded_threads(make_node):
    """Issue 12.13: media probing shared the default thread pool with password hashing, so six uploads made
    logins wait 30 s. With every media thread busy, logins are still answered at once."""
    node = await make_node(**RELAXED, image_decode_threads=1, media_probe_threads=1)
    url = base_url(node)
    alice = await registered(url, "poolside")
    release = threading.Event()
    media = node.services.media
    busy = [asyncio.get_running_loop().run_in_executor(pool, release.wait) for pool in (media._images, media._probes)]
    try:
        waiting = asyncio.ensure_future(raw_upload(alice, "image", png_of(64, 64)))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # queued behind the busy image thread, not run on another pool
        status, body = await asyncio.wait_for(
            post(url, "/api/v1/auth/login", {"username": "poolside", "password": PASSWORD}), 10 * TIMEOUT_FACTOR
        )
        assert status == 200, body
    finally:
        release.set()
        await asyncio.gather(*busy)
    assert (await waiting)[0] == 201
    await alice.close()
