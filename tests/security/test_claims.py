"""docs/security.md claims that no other test pins: the password hash type and the download headers."""

from __future__ import annotations

import io

import aiohttp
from PIL import Image

from tests.conftest import base_url

DOWNLOAD_CSP = (
    "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
)


async def test_password_hashes_are_argon2id(node, make_client):
    await make_client("hashed", connect=False)
    account = await node.services.storage.account_by_username("hashed")
    assert account is not None and account.password_hash.startswith("$argon2id$")


async def test_download_headers_as_documented(node, make_client):
    """Pins "Defences", downloads: the exact CSP, nosniff, same-origin; inline only for images."""
    alice = await make_client("headers", connect=False)
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 10, 10)).save(buf, "PNG")
    auth = {"Authorization": f"Bearer {alice.access_token}"}
    url = base_url(node) + "/api/v1/uploads"
    async with aiohttp.ClientSession() as http:
        ids = {}
        for kind, data, name in (("image", buf.getvalue(), "a.png"), ("file", b"hello\n" * 10, "a.txt")):
            async with http.post(url, params={"kind": kind, "name": name}, data=data, headers=auth) as resp:
                assert resp.status == 201, await resp.text()
                ids[kind] = (await resp.json())["upload"]
        for kind, upload_id in ids.items():
            for path in (
                (f"{url}/{upload_id}", f"{url}/{upload_id}/thumb")
                if kind == "image"
                else (f"{url}/{upload_id}",)
            ):
                async with http.get(path, headers=auth) as resp:
                    assert resp.status == 200, path
                    headers = resp.headers
                assert headers["Content-Security-Policy"] == DOWNLOAD_CSP
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Cross-Origin-Resource-Policy"] == "same-origin"
                if kind == "image":
                    assert headers["Content-Disposition"].startswith("inline;")
                    assert headers["Content-Type"].startswith("image/")
                else:
                    assert headers["Content-Disposition"].startswith("attachment;")
                    assert headers["Content-Type"] == "application/octet-stream"
