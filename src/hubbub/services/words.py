"""The sensitive-word filter: an admin-edited word list applied to every text message (docs/operations.md).

The list lives in the database (``sensitive_words``). Each node keeps it compiled in memory, so checking a
message costs no I/O: the send path stays as it is. A node reloads the list when it edits it itself, and
otherwise every ``word_refresh_s`` seconds when the list's version (bumped by every change, in the same
transaction) moved — which is how edits made on another node or with ``hubbub admin words`` arrive.

Matching is case-insensitive and by substring, not by word boundary: many languages do not separate words
with spaces, and a filter that ``"bad"`` passes as ``"xbadx"`` is the one users learn to dodge first.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.engines.storage.base import Storage

log = logging.getLogger(__name__)

MODES = ("replace", "reject", "off")
REPLACEMENT = "***"
MAX_WORD_CHARS = 64
#: Fields of a message body the filter reads: the text, and the caption of an image, file or video.
FILTERED_FIELDS = ("text", "caption")


def normalize(word: str) -> str:
    cleaned = word.strip().lower()
    if not 1 <= len(cleaned) <= MAX_WORD_CHARS:
        raise invalid("words", f"each word is 1 to {MAX_WORD_CHARS} characters")
    return cleaned


class WordFilter:
    def __init__(self, config: Config, storage: Storage) -> None:
        if config.word_filter not in MODES:
            raise SystemExit(f"word_filter must be one of {', '.join(MODES)}, not {config.word_filter!r}")
        self.mode = config.word_filter
        self.storage = storage
        self.refresh_s = config.word_refresh_s
        self.version = -1
        self.words: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        self._task: asyncio.Task[None] | None = None

    # -- the cached list --------------------------------------------------------------------------
    async def load(self) -> None:
        version, words = await self.storage.words()
        self._use(version, words)

    def _use(self, version: int, words: list[str]) -> None:
        self.version = version
        self.words = tuple(words)
        if not words:
            self._pattern = None
            return
        # Longest first, so "badword" is replaced whole rather than as "bad" + "word".
        alternatives = sorted(words, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)

    async def refresh(self) -> bool:
        """Reload if the list changed since it was loaded; True if it did."""
        if await self.storage.words_version() == self.version:
            return False
        await self.load()
        return True

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._keep_fresh(), name="word-filter")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _keep_fresh(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                if await self.refresh():
                    log.info("word_list_reloaded", extra={"words": len(self.words), "version": self.version})
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is down: keep filtering with the list we have
                log.warning("word_list_refresh_failed", extra={"error": str(exc)})

    # -- checking ---------------------------------------------------------------------------------
    def find(self, text: str) -> list[str]:
        if self._pattern is None:
            return []
        return sorted({m.group(0).lower() for m in self._pattern.finditer(text)})

    def apply(self, body: dict[str, Any]) -> None:
        """Filter a message body in place: replace listed words with ***, or refuse the message."""
        if self._pattern is None or self.mode == "off":
            return
        for field in FILTERED_FIELDS:
            value = body.get(field)
            if not isinstance(value, str) or not value:
                continue
            if self.mode == "reject":
                if self._pattern.search(value):
                    # The words are not named: the sender knows what they wrote, and a list of the
                    # server's words is what someone probing the filter wants.
                    raise HubbubError(Code.CONTENT_REJECTED, "the message contains words this server refuses")
            else:
                body[field] = self._pattern.sub(REPLACEMENT, value)
