"""Data-lifecycle routes: retention policies, exports, closing an account (docs/protocol.md, "Retention and
the purged floor", "Exports", "Closing an account"). Thin: the rules are in services/retention.py,
services/export.py and services/closing.py."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from hubbub.core.errors import Code, HubbubError, not_found
from hubbub.engines.blobs.base import BlobNotFound
from hubbub.platform.routing import Ctx, route
from hubbub.services.export import ExportList, ExportView
from hubbub.services.retention import PurgeReport, RetentionView


class RetentionBody(msgspec.Struct, kw_only=True):
    #: Days to keep messages; 0 keeps them for ever; null: the server default applies.
    days: int | None


class CloseAccountBody(msgspec.Struct, kw_only=True):
    password: Annotated[str, Meta(min_length=1, max_length=256)]


def _export_id(ctx: Ctx) -> str:
    raw = ctx.request.match_info["export_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 20:
        raise not_found("export")
    return raw


# -- retention --------------------------------------------------------------------------------------
@route(
    "GET",
    "/api/v1/conversations/{conv}/retention",
    summary="The conversation's retention: what applies, its own policy, the purged floor",
    response=RetentionView,
    tag="messages",
)
async def get_retention(ctx: Ctx) -> RetentionView:
    return await ctx.s.retention.view(ctx.me, ctx.request.match_info["conv"])


@route(
    "PUT",
    "/api/v1/conversations/{conv}/retention",
    summary="Set a group's retention (its owner; days 0 = for ever, null = server default)",
    body=RetentionBody,
    response=RetentionView,
    tag="messages",
)
async def set_retention(ctx: Ctx) -> RetentionView:
    b: RetentionBody = ctx.body
    return await ctx.s.retention.set_own(ctx.me, ctx.request.match_info["conv"], b.days)


@route(
    "PUT",
    "/api/v1/admin/conversations/{conv}/retention",
    summary="Set any conversation's retention (days 0 = for ever, null = server default)",
    body=RetentionBody,
    response=RetentionView,
    tag="admin",
)
async def admin_set_retention(ctx: Ctx) -> RetentionView:
    b: RetentionBody = ctx.body
    return await ctx.s.retention.set_by_admin(ctx.me, ctx.request.match_info["conv"], b.days)


@route(
    "POST",
    "/api/v1/admin/retention/purge",
    summary="Run the retention purge now (it also runs every retention_interval_s)",
    response=PurgeReport,
    tag="admin",
)
async def purge(ctx: Ctx) -> PurgeReport:
    return await ctx.s.retention.purge_once()


# -- exports ----------------------------------------------------------------------------------------
@route(
    "POST",
    "/api/v1/exports",
    summary="Export my data (built in the background; one at a time)",
    response=ExportView,
    status=202,
    tag="exports",
)
async def request_export(ctx: Ctx) -> ExportView:
    return await ctx.s.exports.request_user_export(ctx.me)


@route("GET", "/api/v1/exports", summary="My exports, newest first", response=ExportList, tag="exports")
async def my_exports(ctx: Ctx) -> ExportList:
    return ExportList(exports=await ctx.s.exports.mine(ctx.me))


@route("GET", "/api/v1/exports/{export_id}", summary="One of my exports", response=ExportView, tag="exports")
async def one_export(ctx: Ctx) -> ExportView:
    return await ctx.s.exports.one(ctx.me, _export_id(ctx))


@route(
    "GET",
    "/api/v1/exports/{export_id}/download",
    summary="Download a ready export through its signed link (no token; the link expires with the export)",
    auth=False,
    query={"expires": "from the export's download_url", "sig": "from the export's download_url"},
    tag="exports",
)
async def download_export(ctx: Ctx) -> web.StreamResponse:
    q = ctx.request.query
    record, chunks = await ctx.s.exports.open_download(
        _export_id(ctx), q.get("expires", ""), q.get("sig", "")
    )
    try:
        first = await anext(chunks, b"")
    except BlobNotFound as exc:
        raise HubbubError(Code.NOT_FOUND, "export not found (its archive is missing)") from exc
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="hubbub-export-{record.id}.zip"',
            "Cache-Control": "private, no-store",
            "Referrer-Policy": "no-referrer",
        }
    )
    response.content_length = record.size
    await response.prepare(ctx.request)
    if first:
        await response.write(first)
    async for chunk in chunks:
        await response.write(chunk)
    await response.write_eof()
    return response


@route(
    "POST",
    "/api/v1/admin/conversations/{conv}/export",
    summary="Export a whole conversation for compliance (built in the background)",
    response=ExportView,
    status=202,
    tag="admin",
)
async def admin_export(ctx: Ctx) -> ExportView:
    return await ctx.s.exports.request_conversation_export(ctx.me, ctx.request.match_info["conv"])


# -- closing an account -----------------------------------------------------------------------------
@route(
    "DELETE",
    "/api/v1/me",
    summary="Close my account (my password again): anonymised, sessions ended, messages kept as 'Deleted user'",
    body=CloseAccountBody,
    status=204,
    tag="users",
)
async def close_me(ctx: Ctx) -> None:
    b: CloseAccountBody = ctx.body
    assert ctx.principal is not None
    await ctx.s.closing.close_own(ctx.principal, b.password)


# (An admin deletes an account with DELETE /api/v1/admin/users/{user_id}: routes_admin.py, audited.)
