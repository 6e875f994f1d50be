"""Message search and the history page around a result (docs/protocol.md, "Search")."""

from __future__ import annotations

from hubbub.core.convs import validate
from hubbub.core.errors import invalid
from hubbub.platform.routing import Ctx, route
from hubbub.services.search import AroundPage, SearchResults


@route(
    "GET",
    "/api/v1/search",
    summary="Search the messages I may read, newest first",
    response=SearchResults,
    tag="messages",
    query={
        "q": "the words to find (required; 1-200 characters, at most 8 words; every word must match)",
        "conv": "only this conversation",
        "sender": "only messages from this user id",
        "kind": "comma-separated types: text, image, file, voice, video",
        "since": "only messages at or after this time (ms since the epoch)",
        "until": "only messages before this time (ms since the epoch)",
        "cursor": "next_cursor of the previous page",
        "limit": "1-50, default 20",
    },
)
async def search(ctx: Ctx) -> SearchResults:
    query = ctx.request.query
    kinds = tuple(k.strip() for k in query.get("kind", "").split(",") if k.strip())
    if len(kinds) > 5:
        raise invalid("kind", "at most 5 types")
    conv = query.get("conv") or None
    return await ctx.s.search.search(
        ctx.me,
        query.get("q", ""),
        conv=validate(conv) if conv is not None else None,
        sender=ctx.query_int("sender", None, 1, 2**31),
        kinds=kinds,
        since=ctx.query_int("since", None),
        until=ctx.query_int("until", None),
        cursor=query.get("cursor") or None,
        limit=ctx.query_int("limit", 20, 1, 50) or 20,
    )


@route(
    "GET",
    "/api/v1/conversations/{conv}/messages/{seq}/around",
    summary="Messages around a seq (to open a conversation at a search result)",
    response=AroundPage,
    tag="messages",
    query={
        "before": "messages up to and including seq, 1-100, default 25",
        "after": "newer ones, 0-100, default 25",
    },
)
async def around(ctx: Ctx) -> AroundPage:
    conv = validate(ctx.request.match_info["conv"])
    return await ctx.s.search.around(
        ctx.me,
        conv,
        ctx.path_int("seq"),
        ctx.query_int("before", 25, 1, 100) or 25,
        ctx.query_int("after", 25, 0, 100) or 0,
    )
