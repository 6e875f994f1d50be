"""Uploads over HTTP: streamed in, streamed out with ranges and caching. Rules in services/media.py.

Upload bodies are read from ``request.content`` chunk by chunk (never ``request.read()``), so the app's
1 MiB ``client_max_size`` does not apply and the per-kind limits do; a Content-Length over the limit is refused
before any body byte is read.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from urllib.parse import quote

from aiohttp import BodyPartReader, ClientPayloadError, web

from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.engines.blobs.base import CHUNK, BlobNotFound
from hubbub.platform.access_log import USER_KEY
from hubbub.platform.bearer import QUERY_KEY, bearer
from hubbub.platform.routing import Ctx, route
from hubbub.services.media import MULTIPART_SLACK, Download, UploadView, Usage

#: Content-addressed bytes never change: let browsers keep them, privately (they are behind a login).
CACHE_CONTROL = "private, max-age=31536000, immutable"
#: Whatever is in the bytes, a browser must not run it: no script, no plugins, no same-origin powers.
CSP = "default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'; sandbox"
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")


@route("GET", "/api/v1/uploads/usage", summary="Bytes my uploads use, and my quota", response=Usage, tag="media")
async def usage(ctx: Ctx) -> Usage:
    return await ctx.s.media.usage(ctx.me)


@route(
    "POST",
    "/api/v1/uploads",
    summary="Upload an image, file, voice clip or video: the raw bytes as the body (kind and name in the "
    "query), or multipart/form-data with a 'file' part (and optionally a 'kind' field before it)",
    response=UploadView,
    status=201,
    query={
        "kind": "image | file | voice | video (required unless a multipart 'kind' field gives it)",
        "name": "the file name to show (sanitized; default: the multipart part's filename)",
        "duration": "voice/video only: the duration in seconds, kept when the file does not say (issue 15)",
    },
    tag="media",
)
async def upload(ctx: Ctx) -> UploadView:
    request = ctx.request
    kind = request.query.get("kind") or None
    name = request.query.get("name")
    declared = request.content_length
    multipart = request.content_type.startswith("multipart/")
    media = ctx.s.media
    media.check_declared(kind, declared, MULTIPART_SLACK if multipart else 0)  # before reading anything
    claim = _claimed_duration(request.query.get("duration"))
    if not multipart:
        if kind is None:
            raise invalid("kind", "give ?kind=image|file|voice|video")
        chunks = _guard(request.content.iter_chunked(CHUNK))
        return await media.upload(ctx.me, kind, name, chunks, declared, claimed_duration=claim)
    try:
        reader = await request.multipart()
    except ValueError as exc:  # "multipart/form-data" without a boundary (found by schemathesis)
        raise HubbubError(Code.BAD_REQUEST, f"malformed multipart body: {exc}") from exc
    while True:
        try:
            part = await reader.next()
        except ValueError as exc:  # a body that does not start with the boundary (found by test_fuzz headers)
            raise HubbubError(Code.BAD_REQUEST, f"malformed multipart body: {exc}") from exc
        if part is None:
            raise invalid("file", "the multipart body has no 'file' part")
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "kind":
            kind = (await part.read_chunk(1024)).decode(errors="replace").strip()[:16]
            media.check_declared(kind, declared, MULTIPART_SLACK)
        elif part.name == "name":
            name = (await part.read_chunk(1024)).decode(errors="replace")  # names are cut to 200 bytes anyway
        elif part.name == "file":
            if kind is None:
                raise invalid("kind", "give ?kind= or a 'kind' field before the 'file' part")
            chunks = _guard(_part_chunks(part))
            return await media.upload(ctx.me, kind, name or part.filename, chunks, claimed_duration=claim)


async def _guard(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """A body cut short (the client went away mid-upload) is the client's error, not a server bug."""
    try:
        async for chunk in chunks:
            yield chunk
    except (ClientPayloadError, ConnectionResetError, EOFError) as exc:
        raise HubbubError(Code.BAD_REQUEST, "the upload body ended early") from exc


async def _part_chunks(part: BodyPartReader) -> AsyncIterator[bytes]:
    while chunk := await part.read_chunk(CHUNK):
        yield chunk


@route(
    "GET",
    "/api/v1/uploads/{upload_id}",
    summary="Download an upload (its uploader, members of a conversation it was sent in, anyone for avatars). "
    "Ranges, ETag/If-None-Match and If-Range are supported; the token may also be ?access_token= for <img>",
    auth=False,
    query={QUERY_KEY: "the access token, when an Authorization header cannot be sent"},
    tag="media",
)
async def download(ctx: Ctx) -> web.StreamResponse:
    return await _serve(ctx, thumb=False)


@route(
    "GET",
    "/api/v1/uploads/{upload_id}/thumb",
    summary="An image upload's thumbnail (WebP, longest side 256 px); same access rules as the download",
    auth=False,
    query={QUERY_KEY: "the access token, when an Authorization header cannot be sent"},
    tag="media",
)
async def thumbnail(ctx: Ctx) -> web.StreamResponse:
    return await _serve(ctx, thumb=True)


def content_disposition(inline: bool, name: str) -> str:
    """RFC 6266: an ASCII fallback for old clients and the exact UTF-8 name in ``filename*``."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in name)
    return f"{'inline' if inline else 'attachment'}; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) of a single satisfiable range; None for no or an ignorable Range header.
    Raises 416 for an unsatisfiable one.

    Positions are ASCII digits of any length (RFC 9110 sets no limit): ``\\d`` would also take "١" and "７",
    and ``int`` of thousands of digits raises (a 500 once), so a number past the file is only compared, never
    converted. Anything else is not a Range this server knows and is ignored, as the RFC allows."""
    if not header:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # multiple ranges or another unit: serve the whole thing, as RFC 9110 allows
    first, last = (_position(g, size) if g else None for g in match.groups())
    if first is None:
        if last is None:
            return None
        if last == 0:  # a suffix of zero bytes
            raise _unsatisfiable(size)
        return max(size - last, 0), size
    end = min(last + 1, size) if last is not None else size
    if first >= size or (last is not None and last < first):
        raise _unsatisfiable(size)
    return first, end


def _position(digits: str, size: int) -> int:
    """A byte position, or ``size + 1`` for any number past the end (its exact value then does not matter)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= len(str(size)) else size + 1


def _unsatisfiable(size: int) -> web.HTTPRequestRangeNotSatisfiable:
    return web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{size}"})


def _matches(header: str, etag: str) -> bool:
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag in tags


async def _serve(ctx: Ctx, thumb: bool) -> web.StreamResponse:
    request = ctx.request
    principal = await ctx.s.auth.authenticate(bearer(request, query=True))
    request[USER_KEY] = principal.user_id  # the access log names who downloaded (the route authenticates itself)
    d: Download = await ctx.s.media.open_download(principal.user_id, request.match_info["upload_id"], thumb)
    etag = f'"{d.key}"'
    headers = {
        "ETag": etag,
        "Cache-Control": CACHE_CONTROL,
        "Accept-Ranges": "bytes",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": CSP,
        "Cross-Origin-Resource-Policy": "same-origin",
        "Content-Disposition": content_disposition(d.inline, d.name),
        "Content-Type": d.mime if d.inline else "application/octet-stream",
    }
    if_none_match = request.headers.get("If-None-Match")
    if if_none_match and _matches(if_none_match, etag):
        return web.Response(status=304, headers={k: headers[k] for k in ("ETag", "Cache-Control")})
    try:
        span = _byte_range(request.headers.get("Range"), d.size)
    except web.HTTPRequestRangeNotSatisfiable as exc:
        return web.Response(status=416, headers={**exc.headers, "ETag": etag})
    if_range = request.headers.get("If-Range")
    if span is not None and if_range is not None and if_range.strip() != etag:
        span = None  # the client's copy is stale: send it all
    start, end = span if span is not None else (0, d.size)
    chunks = ctx.s.media.stream(d, start, end)
    try:
        first = await anext(chunks, b"")  # a blob missing from the store fails here, before any header is sent
    except BlobNotFound as exc:
        raise HubbubError(Code.NOT_FOUND, "upload not found (its bytes are missing)") from exc
    response = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
    if span is not None:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{d.size}"
    response.content_length = end - start
    await response.prepare(request)
    if first:
        await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


def _claimed_duration(raw: str | None) -> float | None:
    """``?duration=`` as a finite number of seconds; its range and fit are the media service's to check."""
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise invalid("duration", "a number of seconds") from None
    if not math.isfinite(value):
        raise invalid("duration", "a number of seconds")
    return value
