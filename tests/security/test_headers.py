"""Security headers on every response (issue 12.18): the web client's page carries a strict CSP that forbids
framing, and every response says nosniff, DENY and no-referrer. tests/browser/test_web_client.py runs the
real client under this policy (a violation is a console error there, which fails it)."""

from __future__ import annotations

import aiohttp

from hubbub.platform.app import web_app_csp
from tests.conftest import base_url


def _directives(csp: str) -> dict[str, list[str]]:
    return {part.split()[0]: part.split()[1:] for part in (p.strip() for p in csp.split(";")) if part}


async def test_web_app_page_has_a_strict_csp_and_cannot_be_framed(node) -> None:
    async with aiohttp.ClientSession() as http, http.get(base_url(node) + "/") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        csp = _directives(resp.headers["Content-Security-Policy"])
        host = f"127.0.0.1:{node.port}"
        assert csp["default-src"] == ["'none'"]
        assert csp["script-src"] == ["'self'"]  # no inline script, no eval
        assert csp["style-src"] == ["'self'"]
        assert csp["frame-ancestors"] == ["'none'"]
        assert csp["object-src"] == ["'none'"] and csp["base-uri"] == ["'none'"]
        assert set(csp["img-src"]) == {"'self'", "data:", "blob:"}
        assert set(csp["media-src"]) == {"'self'", "blob:"}
        assert set(csp["connect-src"]) == {"'self'", f"ws://{host}", f"wss://{host}"}
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


async def test_every_response_is_nosniff_and_unframable(node) -> None:
    async with aiohttp.ClientSession() as http:
        for method, path in [
            ("GET", "/api/v1/me"),  # 401 JSON
            ("GET", "/openapi.json"),
            ("GET", "/readyz"),
            ("GET", "/api/v1/nope"),  # 404 JSON
        ]:
            async with http.request(method, base_url(node) + path) as resp:
                assert resp.headers["X-Content-Type-Options"] == "nosniff", path
                assert resp.headers["X-Frame-Options"] == "DENY", path
                assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"], path


async def test_a_hostile_host_header_does_not_reach_the_policy(node) -> None:
    headers = {"Host": "evil.example; script-src *"}
    async with aiohttp.ClientSession() as http, http.get(base_url(node) + "/", headers=headers) as resp:
        assert resp.headers["Content-Security-Policy"] == web_app_csp("invalid.invalid")


async def test_a_revalidated_page_keeps_the_page_policy(node) -> None:
    """A 304 replaces the cached page's headers in the browser: found by the browser test, where the second
    visit got the API's ``default-src 'none'`` and the app did not load."""
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url(node) + "/") as resp:
            page_policy = resp.headers["Content-Security-Policy"]
            validators = {k: resp.headers[v] for k, v in [("If-Modified-Since", "Last-Modified")] if v in resp.headers}
            validators |= {"If-None-Match": resp.headers["ETag"]} if "ETag" in resp.headers else {}
        async with http.get(base_url(node) + "/", headers=validators) as resp:
            assert resp.status == 304
            assert resp.headers["Content-Security-Policy"] == page_policy
