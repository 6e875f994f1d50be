"""Message search: the rules around the storage's search (docs/protocol.md, "Search").

- Who may search what: the storage applies the visibility rules in SQL (engines/storage/sql_search.py); this
  service checks a named conversation first, so an unknown one or someone else's is a clear 404/403, as for
  history, not an empty page.
- Bad input is refused before any SQL: an empty query, one over ``MAX_QUERY_CHARS`` or with more than
  ``MAX_TERMS`` terms, unknown kinds, an inverted date range, a cursor this server did not give for this
  search (paging cursors are signed with HMAC over the user and the search: a tampered or borrowed cursor is
  ``invalid_field``, never a query).
- Rate limited per user (``search_rate``/``search_burst``), on top of the read bucket every GET takes.
- ``SearchIndexer`` is the node's background task that keeps the index behind the messages table
  (the storage's ``index_messages``): indexing never happens on the send path.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import msgspec

from hubbub.config import Config
from hubbub.core import searchtext
from hubbub.core.convs import parse_group, parse_private, validate
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import Message
from hubbub.core.stats import Figure
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.storage.base import SearchQuery, Storage
from hubbub.services import hidden
from hubbub.services.limits import enforce

log = logging.getLogger(__name__)

MAX_LIMIT = 50
#: Messages either side of the one a jump opens at.
MAX_AROUND = 100


class SearchResult(msgspec.Struct):
    message: Message
    #: The searchable text (the message text, or an upload's caption and file name).
    text: str
    #: [start, end) character (code point) ranges of the matched terms in ``text``.
    highlights: list[tuple[int, int]]


class SearchResults(msgspec.Struct, kw_only=True):
    results: list[SearchResult]
    #: Pass as ``cursor`` for older results; null when there are none.
    next_cursor: str | None
    #: False when a query of only short terms (under three characters) stopped at its scan bound: older
    #: messages were not read yet and ``next_cursor`` continues there.
    complete: bool


class AroundPage(msgspec.Struct, kw_only=True):
    messages: list[Message]
    has_older: bool
    has_newer: bool


class SearchService:
    def __init__(self, config: Config, storage: Storage, limiter: RateLimiter) -> None:
        self.config = config
        self.storage = storage
        self.limiter = limiter
        self._key = hashlib.sha256(b"hubbub search cursor\0" + config.secret().encode()).digest()
        self.searches = 0

    async def _member_floor(self, user_id: int, conv: str) -> int:
        """The seq the user joined ``conv`` after; refuses a conversation that is not theirs (as history)."""
        pair = parse_private(conv)
        if pair is None and parse_group(conv) is None:
            raise not_found("conversation")
        if pair is not None and user_id not in pair:
            raise HubbubError(Code.FORBIDDEN, "not your conversation")
        state = await self.storage.member_state(conv, user_id)
        if state is None:
            if pair is None:
                raise HubbubError(Code.FORBIDDEN, "you are not a member of this group")
            return 0
        return state[1]

    async def search(
        self,
        user_id: int,
        q: str,
        *,
        conv: str | None = None,
        sender: int | None = None,
        kinds: tuple[str, ...] = (),
        since: int | None = None,
        until: int | None = None,
        cursor: str | None = None,
        limit: int = 20,
    ) -> SearchResults:
        if len(q) > searchtext.MAX_QUERY_CHARS:
            raise invalid("q", f"at most {searchtext.MAX_QUERY_CHARS} characters")
        terms = searchtext.terms_of(q)
        if not terms:
            raise invalid("q", "give at least one word to search for")
        if len(terms) > searchtext.MAX_TERMS:
            raise invalid("q", f"at most {searchtext.MAX_TERMS} words")
        unknown = [k for k in kinds if k not in searchtext.KINDS]
        if unknown:
            raise invalid("kind", f"must be among {list(searchtext.KINDS)}")
        if since is not None and until is not None and since >= until:
            raise invalid("until", "must be after since")
        limit = max(1, min(limit, MAX_LIMIT))
        if conv is not None:
            validate(conv)
        scope = msgspec.json.encode([terms, conv, sender, sorted(kinds), since, until]).decode()
        before = self._open_cursor(cursor, user_id, scope) if cursor else None
        await enforce(self.limiter, f"search:{user_id}", self.config.search_rate, self.config.search_burst)
        if conv is not None:
            await self._member_floor(user_id, conv)
        self.searches += 1
        page = await self.storage.search_messages(
            SearchQuery(
                user_id=user_id,
                terms=terms,
                conv=conv,
                sender=sender,
                kinds=tuple(kinds),
                since=since,
                until=until,
                before=before,
                limit=limit,
                short_scan=self.config.search_short_scan,
            )
        )
        results = []
        for hit in page.hits:
            shown = searchtext.searchable_text(hit.message.type, hit.message.body)
            results.append(SearchResult(hit.message, shown, searchtext.highlights(shown, terms)))
        following = page.next_before
        return SearchResults(
            results=results,
            next_cursor=None if following is None else self._make_cursor(following, user_id, scope),
            complete=page.complete,
        )

    async def around(self, user_id: int, conv: str, seq: int, before: int, after: int) -> AroundPage:
        """A page of history around ``seq``: where a search result opens the conversation."""
        validate(conv)
        floor = await self._member_floor(user_id, conv)
        before, after = max(1, min(before, MAX_AROUND)), max(0, min(after, MAX_AROUND))
        found, older, newer = await self.storage.messages_around(conv, seq, before, after, floor)
        found = await hidden.mask(self.storage, user_id, conv, found)
        return AroundPage(messages=found, has_older=older, has_newer=newer)

    # -- cursors ----------------------------------------------------------------------------------
    def _mac(self, rid: int, user_id: int, scope: str) -> str:
        message = f"{rid}:{user_id}:{scope}".encode()
        return base64.urlsafe_b64encode(hmac.digest(self._key, message, "sha256")[:18]).decode()

    def _make_cursor(self, rid: int, user_id: int, scope: str) -> str:
        return f"{rid}.{self._mac(rid, user_id, scope)}"

    def _open_cursor(self, cursor: str, user_id: int, scope: str) -> int:
        """The position a cursor continues from, if this server gave it to this user for this search."""
        raw, _, mac = cursor.partition(".")
        if len(cursor) > 64 or not (raw.isascii() and raw.isdigit()) or len(raw) > 19:
            raise invalid("cursor", "not a cursor of this search")
        rid = int(raw)
        if not hmac.compare_digest(mac, self._mac(rid, user_id, scope)):
            raise invalid("cursor", "not a cursor of this search")
        return rid


class SearchIndexer:
    """The node's background indexer: tails the messages into the index from the stored watermark.

    Every ``search_index_interval_s`` it indexes a batch. While a batch comes back full (a backlog: a burst,
    or the existing messages after the upgrade) it goes on at once — but only while the node stored nothing
    since its last pass (``activity``, the send batcher's count of storing transactions, read only). So while
    the node is sending, indexing takes at most ``search_index_batch`` messages per interval (1,000/s by
    default, ~4 % of a core at 0.038 CPU s per 1,000: docs/benchmarks.md), and the backlog of a burst above
    that rate is caught up once sends pause. Logs its progress every 10 s. Only one node of a cluster indexes
    at a time (the storage's lock); the others' passes return at once."""

    def __init__(self, config: Config, storage: Storage, activity: Callable[[], int] | None = None) -> None:
        self.config = config
        self.storage = storage
        self._activity = activity
        self._seen_activity = -1
        self.indexed = 0
        self.passes = 0
        self.watermark = 0
        self.newest = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.config.search_indexer and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="search-indexer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def run_once(self) -> int:
        """One pass; the number of messages indexed."""
        progress = await self.storage.index_messages(self.config.search_index_batch)
        self.passes += 1
        if progress.ran:
            self.indexed += progress.indexed
            self.watermark, self.newest = progress.watermark, progress.newest
        return progress.indexed

    async def _run(self) -> None:
        logged = time.monotonic()
        while True:
            try:
                done = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.failures += 1
                log.exception("search indexer pass failed; retrying")
                done = 0
            activity = self._activity() if self._activity is not None else 0
            quiet, self._seen_activity = activity == self._seen_activity, activity
            if done >= self.config.search_index_batch and quiet:
                if time.monotonic() - logged > 10:
                    logged = time.monotonic()
                    log.info(
                        "search index catching up",
                        extra={"watermark": self.watermark, "newest": self.newest, "behind": self.lag},
                    )
                await asyncio.sleep(0)  # let sends in between batches
                continue
            await asyncio.sleep(self.config.search_index_interval_s)

    @property
    def lag(self) -> int:
        return max(0, self.newest - self.watermark)


class SearchStats:
    """Search figures for /metrics (core/stats.py)."""

    def __init__(self, search: SearchService, indexer: SearchIndexer) -> None:
        self.search, self.indexer = search, indexer

    def figures(self) -> Iterator[Figure]:
        yield Figure("searches", "counter", "Message searches served.", self.search.searches)
        yield Figure("search_indexed", "counter", "Messages indexed by this node.", self.indexer.indexed)
        yield Figure(
            "search_index_lag",
            "gauge",
            "Messages stored but not yet indexed, as of this node's last indexer pass.",
            self.indexer.lag,
        )
        yield Figure(
            "search_indexer_failures", "counter", "Indexer passes that failed.", self.indexer.failures
        )


__all__: list[Any] = ["AroundPage", "SearchIndexer", "SearchResults", "SearchService", "SearchStats"]
