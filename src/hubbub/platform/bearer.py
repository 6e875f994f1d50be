"""The one reader of a request's bearer token, for the API routes, the rate limiter, downloads and /metrics.

One parser, so that what the limiter counts as "this user" is exactly what the route authenticates: the
``Authorization: Bearer <token>`` header (scheme case-insensitive, spaces around the token ignored), and only
where a caller asks for it (downloads: an ``<img>`` cannot send a header) the ``?access_token=`` query value.
"""

from __future__ import annotations

from aiohttp import web

from hubbub.core.errors import Code, HubbubError

QUERY_KEY = "access_token"


def bearer_token(request: web.Request, *, query: bool = False) -> str:
    """The token, or "" when there is none. With ``query``, ``?access_token=`` stands in for a missing header."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    if not token and query:
        token = request.query.get(QUERY_KEY, "").strip()
    return token


def bearer(request: web.Request, *, query: bool = False) -> str:
    """The token; UNAUTHORIZED when there is none."""
    token = bearer_token(request, query=query)
    if not token:
        raise HubbubError(Code.UNAUTHORIZED, "missing bearer token")
    return token
