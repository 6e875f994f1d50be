"""Uploads end to end (issue 6): every kind through HTTP and the SDK, on the local and the S3 blob store, and the
bad input each gets a clear error for, leaving nothing behind. Rules: services/media.py, docs/media.md."""

from __future__ import annotations

import asyncio
import io
import struct
import wave
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict
from PIL import Image

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError
from hubbub.node import Node
from tests import s3server
from tests.conftest import base_url, friends

MakeClient = Callable[..., Awaitable[HubbubClient]]


@pytest.fixture(scope="module")
def seaweed() -> Iterator[s3server.SeaweedServer]:
    server = s3server.acquire()
    yield server
    s3server.release()


@pytest.fixture(params=["local", "s3"])
async def media_node(request: pytest.FixtureRequest, make_node: Callable[..., Awaitable[Node]]) -> Node:
    """A node on each blob store (overrides ``node`` for ``make_client`` where a test asks for both)."""
    if request.param == "local":
        return await make_node()
    server: s3server.SeaweedServer = request.getfixturevalue("seaweed")
    for attempt in range(60):  # SeaweedFS's filer may still be coming up
        try:
            return await make_node(
                s3_endpoint=server.endpoint,
                s3_bucket="e2e",
                s3_prefix=f"t{attempt}-{id(request)}",
                s3_access_key=s3server.ACCESS_KEY,
                s3_secret_key=s3server.SECRET_KEY,
            )
        except Exception:
            await asyncio.sleep(0.25)
    raise AssertionError("could not start a node on SeaweedFS")


# -- test files -------------------------------------------------------------------------------------
def jpeg_with_gps(size: tuple[int, int] = (640, 480), orientation: int = 6) -> bytes:
    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((30, 30, 200), (0, 0, size[0] // 2, size[1] // 2))
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=85)
    return out.getvalue()


def png(size: tuple[int, int] = (300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", size, (0, 128, 0, 128)).save(out, "PNG")
    return out.getvalue()


def wav(seconds: float = 1.5, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"\0\0" * int(seconds * rate))
    return out.getvalue()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def mp4(seconds: float = 3.0) -> bytes:
    """An MP4 container with a movie header (no samples: enough for the duration)."""
    mvhd = b"\0\0\0\0" + struct.pack(">IIII", 0, 0, 1000, int(seconds * 1000)) + b"\0" * 80
    return _box(b"ftyp", b"isom\0\0\x02\0isomiso2mp41") + _box(b"moov", _box(b"mvhd", mvhd)) + _box(b"mdat", b"\0" * 64)


def _ebml(ident: int, payload: bytes) -> bytes:
    id_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return id_bytes + (0x0100000000000000 | len(payload)).to_bytes(8, "big") + payload


def webm(seconds: float = 2.5) -> bytes:
    header = _ebml(0x1A45DFA3, _ebml(0x4282, b"webm"))
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big")) + _ebml(0x4489, struct.pack(">d", seconds * 1000)))
    return header + _ebml(0x18538067, info + _ebml(0x1F43B675, b"\0" * 32))


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def _ogg_page(packet: bytes, granule: int, sequence: int, flags: int) -> bytes:
    lacing = bytes([255] * (len(packet) // 255) + [len(packet) % 255])
    header = b"OggS\0" + bytes([flags]) + struct.pack("<qIII", granule, 0x1234, sequence, 0) + bytes([len(lacing)])
    page = header + lacing + packet
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg(seconds: float, codec: str = "opus") -> bytes:
    """An Ogg Opus or Vorbis stream: its identification header, tags, and a last page whose granule position
    says how long it is (no real audio: enough for the duration)."""
    if codec == "opus":
        ident, rate, skip = b"OpusHead\x01\x01" + struct.pack("<HIhB", 312, 48_000, 0, 0), 48_000, 312
        tags = b"OpusTags" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0)
    else:
        ident = b"\x01vorbis" + struct.pack("<IBIiii", 0, 1, 44_100, 0, 0, 0) + b"\xb8\x01"
        rate, skip, tags = 44_100, 0, b"\x03vorbis" + struct.pack("<I", 4) + b"test" + struct.pack("<I", 0) + b"\x01"
    return (
        _ogg_page(ident, 0, 0, 2)
        + _ogg_page(tags, 0, 1, 0)
        + _ogg_page(b"\0" * 200, int(seconds * rate) + skip, 2, 4)
    )


def png_bomb(side: int = 100_000) -> bytes:
    """A tiny file announcing 10^10 pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")


#: Marks planted in every kind of metadata: none may come back from the server.
SECRETS = (b"GPSSECRET", b"XMPSECRET", b"IPTCSECRET", b"COMMENTSECRET", b"TEXTSECRET", b"TestCam")


def gps_exif(orientation: int = 1) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "TestCam"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (48.0, 51.0, 29.0), "E", (2.0, 17.0, 40.0)
    gps[27] = "GPSSECRET"  # GPSProcessingMethod
    return exif


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description exif:GPSLatitude="48,51N">XMPSECRET</rdf:Description></x:xmpmeta>'


def photo(mode: str = "RGB", size: tuple[int, int] = (120, 80)) -> Image.Image:
    image = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else (200, 30, 30, 255))
    image.paste((30, 30, 200) if mode == "RGB" else (30, 30, 200, 255), (0, 0, size[0] // 2, size[1] // 2))
    return image


def jpeg_with_everything(orientation: int = 1) -> bytes:
    out = io.BytesIO()
    photo().save(out, "JPEG", exif=gps_exif(orientation), comment=b"COMMENTSECRET", xmp=XMP, quality=90)
    data = out.getvalue()
    iptc = b"Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x0e\x1c\x02\x78\x00\x0aIPTCSECRET"
    app13 = b"\xff\xed" + struct.pack(">H", len(iptc) + 2) + iptc
    return data[:2] + app13 + data[2:]


def png_with_everything(orientation: int | None = 1) -> bytes:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Comment", "TEXTSECRET")
    info.add_text("Software", "TestCam", zip=True)
    if orientation is not None:  # text chunks alone: the old rule kept them (no EXIF or XMP to strip)
        info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    out = io.BytesIO()
    exif = {} if orientation is None else {"exif": gps_exif(orientation)}
    photo("RGBA").save(out, "PNG", pnginfo=info, **exif)
    return out.getvalue()


def gif_with_everything() -> bytes:
    out = io.BytesIO()
    frames = [photo().convert("P"), photo().rotate(180).convert("P")]
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], comment=b"COMMENTSECRET", loop=0)
    data = out.getvalue()
    flags = data[10]
    at = 13 + (3 * (2 << (flags & 7)) if flags & 0x80 else 0)
    # XMP as Adobe writes it into GIFs: raw bytes, then a "magic trailer" that ends any sub-block walk.
    xmp = b"\x21\xff\x0bXMP DataXMP" + XMP + b"\x01" + bytes(range(255, -1, -1)) + b"\x00"
    return data[:at] + xmp + data[at:]


def webp_with_everything(orientation: int = 1) -> bytes:
    out = io.BytesIO()
    photo().save(out, "WEBP", exif=gps_exif(orientation), xmp=XMP, quality=90)
    return out.getvalue()


# -- helpers ----------------------------------------------------------------------------------------
def auth(client: HubbubClient) -> dict[str, str]:
    return {"Authorization": f"Bearer {client.access_token}"}


async def upload(client: HubbubClient, kind: str, data: bytes, name: str | None = None, **headers: str) -> Any:
    params = {"kind": kind, **({"name": name} if name is not None else {})}
    async with client.http.post(
        client.base_url + "/api/v1/uploads", params=params, data=data, headers={**auth(client), **headers}
    ) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise ApiError(body["error"]["code"], body["error"]["message"], resp.status)
        return body


async def fetch(client: HubbubClient, path: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with client.http.get(client.base_url + path, headers={**auth(client), **headers}) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def error_of(awaitable: Awaitable[Any]) -> tuple[str, int]:
    with pytest.raises(ApiError) as info:
        await awaitable
    return info.value.code, info.value.status


def leftovers(node: Node) -> list[str]:
    """Spool files and half-written blobs: there must be none once a request is over."""
    data = Path(node.config.data_dir)
    return [str(p) for d in (data / "spool", data / "blobs" / ".tmp") if d.exists() for p in d.iterdir()]


def blob_files(node: Node) -> list[Path]:
    root = Path(node.config.data_dir) / "blobs"
    return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]


async def usage(client: HubbubClient) -> int:
    return int((await client.api("GET", "/api/v1/uploads/usage"))["used"])


# -- every kind, both backends ----------------------------------------------------------------------
@pytest.fixture
async def clients(media_node: Node) -> AsyncIterator[list[HubbubClient]]:
    made: list[HubbubClient] = []
    for name in ("alice", "bob", "carol"):
        client = HubbubClient(base_url(media_node))
        await client.register(f"{name}{id(made)}", "correct-horse-battery")
        await client.connect()
        made.append(client)
    await friends(made[0], made[1])
    yield made
    for client in made:
        await client.close()


async def test_every_kind_through_http_and_the_sdk(clients: list[HubbubClient]) -> None:
    alice, bob, carol = clients
    files = {
        "image": (jpeg_with_gps(), "holiday.jpg"),
        "file": (b"%PDF-1.4 not really a pdf\n" * 100, "report.pdf"),
        "voice": (wav(1.5), "memo.wav"),
        "video": (mp4(3.0), "clip.mp4"),
    }
    sent: dict[str, dict[str, Any]] = {}
    for kind, (data, name) in files.items():
        up = await upload(alice, kind, data, name)
        assert up["kind"] == kind and up["name"] == name
        ack = await alice.send({"msg_type": kind, "body": {"upload": up["upload"]}}, to=bob.user_id)
        sent[kind] = {"up": up, "ack": ack}
    assert sent["image"]["up"]["mime"] == "image/jpeg"
    assert (sent["image"]["up"]["width"], sent["image"]["up"]["height"]) == (480, 640)  # EXIF orientation 6
    assert sent["image"]["up"]["thumb"] == {"width": 192, "height": 256}
    assert sent["file"]["up"]["mime"] == "application/pdf"
    assert sent["voice"]["up"]["duration"] == 1.5 and sent["voice"]["up"]["mime"] == "audio/wav"
    assert sent["video"]["up"]["duration"] == 3.0 and sent["video"]["up"]["mime"] == "video/mp4"

    conv = sent["image"]["ack"]["conv"]
    await bob.wait_until(lambda: len(bob.history(conv)) >= 4)
    for msg in bob.history(conv):
        up = sent[msg["type"]]["up"]
        assert msg["body"] == up  # the server filled in the metadata: no extra call needed
        status, headers, data = await fetch(bob, f"/api/v1/uploads/{up['upload']}")
        assert status == 200 and len(data) == up["size"]
        if msg["type"] == "image":
            assert headers["Content-Type"] == "image/jpeg"
            assert headers["Content-Disposition"].startswith("inline;")
        else:
            assert headers["Content-Type"] == "application/octet-stream"
            assert headers["Content-Disposition"].startswith("attachment;")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in headers["Content-Security-Policy"]
        # Carol is in no conversation with it: as if it did not exist.
        assert (await fetch(carol, f"/api/v1/uploads/{up['upload']}"))[0] == 404

    image = sent["image"]["up"]["upload"]
    status, headers, data = await fetch(bob, f"/api/v1/uploads/{image}")
    decoded = Image.open(io.BytesIO(data))
    assert decoded.size == (480, 640)
    assert not decoded.getexif()  # no GPS, no camera, no orientation left
    status, headers, thumb = await fetch(bob, f"/api/v1/uploads/{image}/thumb")
    assert status == 200 and headers["Content-Type"] == "image/webp"
    assert Image.open(io.BytesIO(thumb)).size == (192, 256)
    assert (await fetch(carol, f"/api/v1/uploads/{image}/thumb"))[0] == 404


@pytest.mark.parametrize("codec", ["opus", "vorbis"])
async def test_ogg_voice_durations(make_client: MakeClient, codec: str) -> None:
    alice = await make_client()
    up = await upload(alice, "voice", ogg(2.25, codec), f"memo-{codec}.ogg")
    assert up["mime"] == "audio/ogg" and up["duration"] == 2.25


async def test_group_members_can_download_and_others_cannot(
    make_client: MakeClient, node: Node
) -> None:
    owner, member, outsider = await make_client(), await make_client(), await make_client()
    await friends(owner, member)
    group = await owner.api("POST", "/api/v1/groups", {"name": "media", "members": [member.user_id]})
    up = await upload(owner, "image", png(), "g.png")
    await owner.send({"msg_type": "image", "body": {"upload": up["upload"], "caption": "look"}}, conv=group["conv"])
    assert (await fetch(member, f"/api/v1/uploads/{up['upload']}"))[0] == 200
    assert (await fetch(outsider, f"/api/v1/uploads/{up['upload']}"))[0] == 404
    # A member may forward what they can see; the upload then reaches that conversation too.
    await friends(member, outsider)
    await member.send({"msg_type": "image", "body": {"upload": up["upload"]}}, to=outsider.user_id)
    assert (await fetch(outsider, f"/api/v1/uploads/{up['upload']}"))[0] == 200


async def test_avatars_are_public_to_logged_in_users(make_client: MakeClient) -> None:
    alice, stranger = await make_client(), await make_client()
    avatar = await upload(alice, "image", png((64, 64)))
    private = await upload(alice, "image", png((65, 65)))
    await alice.api("PATCH", "/api/v1/me", {"avatar": avatar["upload"]})
    assert (await fetch(stranger, f"/api/v1/uploads/{avatar['upload']}"))[0] == 200
    assert (await fetch(stranger, f"/api/v1/uploads/{avatar['upload']}/thumb"))[0] == 200
    assert (await fetch(stranger, f"/api/v1/uploads/{private['upload']}"))[0] == 404
    # Naming someone else's upload as your avatar is refused (and published nothing before either).
    with pytest.raises(ApiError) as info:
        await stranger.api("PATCH", "/api/v1/me", {"avatar": private["upload"]})
    assert info.value.code == "not_found"
    assert (await fetch(stranger, f"/api/v1/uploads/{private['upload']}"))[0] == 404
    # No token at all: 401; the token in the query (for <img src>) works.
    async with alice.http.get(f"{alice.base_url}/api/v1/uploads/{avatar['upload']}") as resp:
        assert resp.status == 401
    url = f"{alice.base_url}/api/v1/uploads/{avatar['upload']}?access_token={stranger.access_token}"
    async with alice.http.get(url) as resp:
        assert resp.status == 200


async def test_avatars_must_be_image_uploads_the_editor_may_read(make_client: MakeClient) -> None:
    """Issue 12.10: avatars took any string, and another user's recalled image set as a group avatar became
    downloadable by anyone."""
    owner, member, outsider = await make_client(), await make_client(), await make_client()
    await friends(owner, member)
    group = await owner.api("POST", "/api/v1/groups", {"name": "avatars", "members": [member.user_id]})
    gpath = f"/api/v1/groups/{group['id']}"
    secret = await upload(outsider, "image", png((40, 40)))
    document = await upload(owner, "file", b"%PDF-1.4 not an image")
    bad = {
        "javascript:alert(1)": "invalid_field",
        "https://evil.example/a.png": "invalid_field",
        "../../etc/passwd": "invalid_field",
        "0" * 32: "not_found",  # well formed, no such upload
        secret["upload"]: "not_found",  # someone else's, not visible to the editor
        document["upload"]: "invalid_field",  # the editor's own, but not an image
    }
    for value, code in bad.items():
        for method, path, body in (
            ("PATCH", "/api/v1/me", {"avatar": value}),
            ("PATCH", gpath, {"avatar": value}),
            ("POST", "/api/v1/groups", {"name": "g", "avatar": value, "members": []}),
        ):
            with pytest.raises(ApiError) as info:
                await owner.api(method, path, body)
            assert info.value.code == code, (value, path)
    assert (await owner.api("GET", "/api/v1/me"))["avatar"] is None
    assert (await owner.api("GET", gpath))["avatar"] is None

    # The reported attack: a member's image, recalled, set by the owner as the group's avatar.
    photo = await upload(member, "image", png((50, 50)))
    ack = await member.send({"msg_type": "image", "body": {"upload": photo["upload"]}}, conv=group["conv"])
    assert (await fetch(owner, f"/api/v1/uploads/{photo['upload']}"))[0] == 200
    await member.api("POST", f"/api/v1/conversations/{group['conv']}/messages/{ack['seq']}/recall")
    with pytest.raises(ApiError) as info:
        await owner.api("PATCH", gpath, {"avatar": photo["upload"]})
    assert info.value.code == "not_found"
    assert (await fetch(outsider, f"/api/v1/uploads/{photo['upload']}"))[0] == 404

    # A visible image someone else uploaded may be named, but that publishes nothing.
    shown = await upload(member, "image", png((51, 51)))
    await member.send({"msg_type": "image", "body": {"upload": shown["upload"]}}, conv=group["conv"])
    assert (await owner.api("PATCH", gpath, {"avatar": shown["upload"]}))["avatar"] == shown["upload"]
    assert (await fetch(outsider, f"/api/v1/uploads/{shown['upload']}"))[0] == 404
    # The uploader's own avatar is public, for a user and for a group.
    mine = await upload(owner, "image", png((52, 52)))
    assert (await owner.api("PATCH", gpath, {"avatar": mine["upload"]}))["avatar"] == mine["upload"]
    assert (await fetch(outsider, f"/api/v1/uploads/{mine['upload']}"))[0] == 200
    face = await upload(member, "image", png((53, 53)))
    assert (await member.api("PATCH", "/api/v1/me", {"avatar": face["upload"]}))["avatar"] == face["upload"]
    assert (await fetch(outsider, f"/api/v1/uploads/{face['upload']}"))[0] == 200
    assert (await member.api("PATCH", "/api/v1/me", {"avatar": None}))["avatar"] is None
    assert (await fetch(outsider, f"/api/v1/uploads/{face['upload']}"))[0] == 404


async def test_ranges_and_caching(make_client: MakeClient) -> None:
    alice = await make_client()
    data = bytes(range(256)) * 4000
    up = await upload(alice, "file", data, "data.bin")
    path = f"/api/v1/uploads/{up['upload']}"
    status, headers, body = await fetch(alice, path)
    etag = headers["ETag"]
    assert status == 200 and body == data and headers["Accept-Ranges"] == "bytes"
    assert "immutable" in headers["Cache-Control"]
    status, headers, body = await fetch(alice, path, Range="bytes=10-19")
    assert status == 206 and body == data[10:20] and headers["Content-Range"] == f"bytes 10-19/{len(data)}"
    status, headers, body = await fetch(alice, path, Range="bytes=-5")
    assert status == 206 and body == data[-5:]
    status, headers, body = await fetch(alice, path, Range="bytes=1000000-")
    assert status > 0 and body == data[1_000_000:]
    status, headers, _ = await fetch(alice, path, Range=f"bytes={len(data)}-")
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(data)}"
    status, _, body = await fetch(alice, path, **{"If-None-Match": etag})
    assert status == 304 and body == b""
    status, _, body = await fetch(alice, path, Range="bytes=0-9", **{"If-Range": etag})
    assert status == 206 and body == data[:10]
    status, _, body = await fetch(alice, path, Range="bytes=0-9", **{"If-Range": '"stale"'})
    assert status == 200 and body == data


async def test_names_are_sanitized_and_dispositions_safe(make_client: MakeClient, node: Node) -> None:
    alice = await make_client()
    up = await upload(alice, "file", b"<html><script>alert(1)</script></html>", "../../etc/passwd")
    assert up["name"] == "passwd"
    assert not (Path(node.config.data_dir).parent / "etc").exists()
    up = await upload(alice, "file", b"hello", 'r\u00e9sum\u00e9 "final"\r\n\u202egpj.exe')
    assert up["name"] == "r\u00e9sum\u00e9 _final_gpj.exe"  # quotes replaced, CR/LF and the bidi override gone
    _, headers, _ = await fetch(alice, f"/api/v1/uploads/{up['upload']}")
    disposition = headers["Content-Disposition"]
    assert disposition.startswith('attachment; filename="r_sum_ _final_gpj.exe"')
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%20_final_gpj.exe" in disposition
    # HTML uploaded as a file is served as opaque bytes, never as a page.
    html = await upload(alice, "file", b"<html><script>alert(1)</script></html>", "x.html")
    _, headers, _ = await fetch(alice, f"/api/v1/uploads/{html['upload']}")
    assert headers["Content-Type"] == "application/octet-stream"


@pytest.mark.parametrize(
    ("make", "mime", "size"),
    [
        (jpeg_with_everything, "image/jpeg", (120, 80)),
        (lambda: jpeg_with_everything(orientation=6), "image/jpeg", (80, 120)),
        (png_with_everything, "image/png", (120, 80)),
        (lambda: png_with_everything(orientation=None), "image/png", (120, 80)),
        (lambda: png_with_everything(orientation=8), "image/png", (80, 120)),
        (gif_with_everything, "image/gif", (120, 80)),
        (webp_with_everything, "image/webp", (120, 80)),
        (lambda: webp_with_everything(orientation=6), "image/webp", (80, 120)),
    ],
    ids=["jpeg", "jpeg-rotated", "png", "png-text-only", "png-rotated", "gif-animated", "webp", "webp-rotated"],
)
async def test_metadata_is_stripped_from_stored_originals(
    make_client: MakeClient, make: Callable[[], bytes], mime: str, size: tuple[int, int]
) -> None:
    """Issue 12.17: GIF XMP with GPS, JPEG IPTC and comments, PNG text chunks came back unchanged. Every
    kind of metadata is planted; the stored original keeps none of it, and its orientation is applied."""
    alice = await make_client()
    data = make()
    assert any(secret in data for secret in SECRETS)
    up = await upload(alice, "image", data, "planted")
    assert up["mime"] == mime and (up["width"], up["height"]) == size
    status, _, stored = await fetch(alice, f"/api/v1/uploads/{up['upload']}")
    assert status == 200 and len(stored) == up["size"]
    assert [secret for secret in SECRETS if secret in stored] == []
    assert b"Exif\0\0" not in stored and b"xmpmeta" not in stored and b"8BIM" not in stored
    with Image.open(io.BytesIO(stored)) as image:
        assert image.size == size
        assert not image.getexif()
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment", "Software"} & set(image.info)
        if mime == "image/gif":
            assert image.n_frames == 2 and image.info.get("loop") == 0  # the animation survives
        image.convert("RGB").load()  # and it still decodes
    status, _, thumb = await fetch(alice, f"/api/v1/uploads/{up['upload']}/thumb")
    assert status == 200 and not [secret for secret in SECRETS if secret in thumb]


async def test_multipart_upload(make_client: MakeClient) -> None:
    alice = await make_client()
    form = aiohttp.FormData()
    form.add_field("kind", "image")
    form.add_field("file", png(), filename="pic.png", content_type="text/plain")  # the header is ignored
    async with alice.http.post(alice.base_url + "/api/v1/uploads", data=form, headers=auth(alice)) as resp:
        up = await resp.json()
        assert resp.status == 201, up
    assert up["name"] == "pic.png" and up["mime"] == "image/png" and up["width"] == 300


# -- bad input --------------------------------------------------------------------------------------
async def raw_request(node: Node, head: str, body_parts: list[bytes], pause: float = 0.0) -> bytes:
    """Send a hand-made request (headers, then body parts) and return what the server answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(head.encode())
    try:
        for part in body_parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
    except ConnectionError:
        pass
    try:
        return await asyncio.wait_for(reader.read(65536), 10)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def head_of(client: HubbubClient, node: Node, kind: str, extra: str) -> str:
    return (
        f"POST /api/v1/uploads?kind={kind} HTTP/1.1\r\nHost: 127.0.0.1:{node.port}\r\n"
        f"Authorization: Bearer {client.access_token}\r\n{extra}\r\n"
    )


async def test_oversized_uploads_are_refused_early(make_client: MakeClient, node: Node) -> None:
    alice = await make_client()
    # Content-Length over the limit: refused from the headers alone, no body byte sent.
    answer = await raw_request(node, head_of(alice, node, "voice", f"Content-Length: {11 * 1024 * 1024}\r\n"), [])
    assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer
    # Chunked (no length announced): cut off once the limit is passed, long before the sender is done.
    chunk = b"\0" * 65536
    parts = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"] * 200  # 12.5 MiB > 10 MiB for voice
    answer = await raw_request(node, head_of(alice, node, "voice", "Transfer-Encoding: chunked\r\n"), parts)
    assert answer.startswith(b"HTTP/1.1 413") and b'"too_large"' in answer
    assert leftovers(node) == [] and blob_files(node) == [] and await usage(alice) == 0


async def test_quota(make_node: Callable[..., Awaitable[Node]]) -> None:
    node = await make_node(upload_quota_bytes=150_000)
    async with HubbubClient(base_url(node)) as alice:
        await alice.register("quota-user", "correct-horse-battery")
        await upload(alice, "file", b"a" * 100_000)
        assert await error_of(upload(alice, "file", b"b" * 100_000)) == ("quota_exceeded", 413)
        assert await alice.api("GET", "/api/v1/uploads/usage") == {"used": 100_000, "quota": 150_000}
        assert leftovers(node) == []


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_parallel_uploads_cannot_pass_the_quota(make_node: Callable[..., Awaitable[Node]], chunked: bool) -> None:
    """Issue 12.9: twelve 1 MB uploads at once against a 4 MB quota stored 12 MB; each upload checked the
    quota against what was stored before it started. Now each holds a reservation before it streams."""
    quota, size = 4_000_000, 1_000_000
    node = await make_node(upload_quota_bytes=quota, upload_burst=100, upload_ip_burst=100)
    async with HubbubClient(base_url(node)) as alice:
        await alice.register("parallel-quota", "correct-horse-battery")

        async def body(fill: bytes) -> AsyncIterator[bytes]:
            for _ in range(size // 50_000):
                yield fill * 50_000
                await asyncio.sleep(0.01)  # every upload is mid-stream at the same time

        async def one(i: int) -> tuple[int, str]:
            fill = bytes([65 + i])  # distinct bytes: no deduplication to hide a bypass
            data: Any = body(fill) if chunked else fill * size
            async with alice.http.post(
                alice.base_url + "/api/v1/uploads", params={"kind": "file"}, data=data, headers=auth(alice)
            ) as resp:
                answer = await resp.json()
                return resp.status, answer["error"]["code"] if resp.status != 201 else "created"

        results = await asyncio.gather(*(one(i) for i in range(12)))
        created = [r for r in results if r == (201, "created")]
        refused = [r for r in results if r != (201, "created")]
        assert all(r == (413, "quota_exceeded") for r in refused), results
        used = await usage(alice)
        assert used == len(created) * size <= quota
        if not chunked:
            assert len(created) == 4  # the announced length is reserved whole: exactly the quota is used
        # Nothing is left reserved: the refused uploads' reservations are gone, the quota is usable again.
        assert (await alice.api("GET", "/api/v1/uploads/usage"))["used"] == used
        rest = quota - used
        if rest:
            await upload(alice, "file", b"z" * rest)
        assert await error_of(upload(alice, "file", b"y")) == ("quota_exceeded", 413)
        assert leftovers(node) == []


async def test_truncated_uploads_leave_nothing(make_client: MakeClient, node: Node) -> None:
    alice = await make_client()
    # The client announces 200 kB, sends 100 kB and hangs up.
    head = head_of(alice, node, "file", "Content-Length: 200000\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(head.encode() + b"x" * 100_000)
    await writer.drain()
    writer.close()
    await asyncio.sleep(0.3)
    assert leftovers(node) == [] and blob_files(node) == [] and await usage(alice) == 0
    # A complete request whose image is cut in half does not decode.
    image = jpeg_with_gps((800, 600))
    assert await error_of(upload(alice, "image", image[: len(image) // 2])) == ("bad_media", 422)
    assert leftovers(node) == [] and blob_files(node) == []


@pytest.mark.parametrize(
    ("kind", "data", "code"),
    [
        ("image", b"\xff\xd8\xff\xe0" + b"\x13garbage" * 500, ("bad_media", 422)),  # a JPEG header, then junk
        ("image", b"\x89PNG\r\n\x1a\n" + b"\0" * 100, ("bad_media", 422)),
        ("image", b"<html><script>alert(1)</script></html>", ("unsupported_media", 415)),
        ("image", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', ("unsupported_media", 415)),
        ("image", png_bomb(), ("too_large", 413)),
        ("voice", b"RIFF\0\0\0\0WAVEjunkjunk", ("bad_media", 422)),
        ("voice", png(), ("unsupported_media", 415)),
        ("video", b"\0\0\0\x18ftypisom" + b"\0" * 100, ("bad_media", 422)),  # no movie header
        ("video", wav(), ("unsupported_media", 415)),
        ("sticker", b"x", ("invalid_field", 422)),
        ("file", b"", ("invalid_field", 422)),
    ],
    ids=["fake-jpeg", "fake-png", "html", "svg", "bomb", "fake-wav", "png-as-voice", "no-moov", "wav-as-video",
         "unknown-kind", "empty"],
)
async def test_bad_files(make_client: MakeClient, node: Node, kind: str, data: bytes, code: tuple[str, int]) -> None:
    alice = await make_client()
    assert await error_of(upload(alice, kind, data, "x.jpg")) == code
    assert leftovers(node) == [] and blob_files(node) == [] and await usage(alice) == 0


async def test_bad_references_in_messages(make_client: MakeClient) -> None:
    alice, bob, mallory = await make_client(), await make_client(), await make_client()
    await friends(alice, bob, mallory)
    secret = await upload(bob, "image", png())
    mine = await upload(alice, "voice", wav())

    async def send(kind: str, body: dict[str, Any]) -> tuple[str, int]:
        with pytest.raises(ApiError) as info:
            await alice.send({"msg_type": kind, "body": body}, to=mallory.user_id, timeout=5)
        return info.value.code, info.value.status

    assert (await send("image", {"upload": "0" * 32}))[0] == "not_found"  # unknown id
    assert (await send("image", {"upload": "../../etc/passwd"}))[0] == "not_found"
    assert (await send("image", {"upload": secret["upload"]}))[0] == "not_found"  # someone else's, not seen
    assert (await send("image", {"upload": mine["upload"]}))[0] == "invalid_field"  # a voice upload
    assert (await send("image", {}))[0] == "invalid_field"
    assert (await send("voice", {"upload": mine["upload"], "width": 1}))[0] == "invalid_field"
    # Over HTTP the same.
    with pytest.raises(ApiError) as info:
        await alice.api("POST", "/api/v1/messages", {"cmid": "m1", "to": mallory.user_id, "type": "image",
                                                     "body": {"upload": secret["upload"]}})
    assert info.value.code == "not_found" and info.value.status == 404
    # A file message may carry any kind of upload.
    await alice.send({"msg_type": "file", "body": {"upload": mine["upload"]}}, to=mallory.user_id)
    # Unknown and malformed ids on download: 404 as well.
    for path in ("0" * 32, "nothex", "..%2F..%2Fetc%2Fpasswd", f"{'0' * 32}/thumb"):
        assert (await fetch(alice, f"/api/v1/uploads/{path}"))[0] == 404


# -- storage: dedup and the collector -----------------------------------------------------------------
async def test_same_bytes_stored_once_and_garbage_collected(make_client: MakeClient, node: Node) -> None:
    alice, bob = await make_client(), await make_client()
    await friends(alice, bob)
    data = b"the same file" * 1000
    a = await upload(alice, "file", data, "a.txt")
    b = await upload(bob, "file", data, "b.txt")
    kept = await upload(alice, "image", png())
    assert a["upload"] != b["upload"]
    assert len(blob_files(node)) == 3  # the shared file blob, the image and its thumbnail
    await alice.send({"msg_type": "image", "body": {"upload": kept["upload"]}}, to=bob.user_id)
    media = node.services.media
    # Within the grace period nothing goes.
    assert (await media.gc_once()).blobs == 0
    # A day later: the two unsent uploads and their shared blob go; the sent image and thumbnail stay.
    report = await media.gc_once(now=2**42)
    assert (report.uploads, report.blobs, report.confirmed_refs) == (2, 1, 1)
    assert len(blob_files(node)) == 2
    assert (await fetch(bob, f"/api/v1/uploads/{kept['upload']}"))[0] == 200
    assert (await fetch(alice, f"/api/v1/uploads/{a['upload']}"))[0] == 404
