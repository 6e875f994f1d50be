"""The sensitive-word filter: an admin-edited word list applied to every text message (docs/operations.md).

The list lives in the database (``sensitive_words``). Each node keeps it compiled in memory, so checking a
message costs no I/O: the send path stays as it is. A node reloads the list when it edits it itself, and
otherwise every ``word_refresh_s`` seconds when the list's version (bumped by every change, in the same
transaction) moved — which is how edits made on another node or with ``hubbub admin words`` arrive.

Matching is case-insensitive and by substring, not by word boundary: many languages do not separate words
with spaces, and a filter that ``"bad"`` passes as ``"xbadx"`` is the one users learn to dodge first.

Words and texts are compared in one normal form (``fold``): NFKC (full-width ``ｂａｄ`` and ligatures become
plain letters), case-folded (``ß`` matches ``ss``), and without invisible characters (format characters such
as zero-width spaces and joiners, soft hyphens, bidi controls, and variation selectors), which a reader does
not see but which split a word for a plain substring match. ``replace`` then stars the *original* span, the
invisible characters inside it included. An ASCII text, the common case, is matched as it is (its normal form
is itself, lower-cased); any other is folded once, and mapped back to the original only when it matches.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import unicodedata
from typing import Any

from hubbub.config import WORD_FILTER_MODES, Config
from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.core.periodic import Periodic
from hubbub.engines.storage.base import Storage

log = logging.getLogger(__name__)

MODES = WORD_FILTER_MODES
REPLACEMENT = "***"
MAX_WORD_CHARS = 64
#: Fields of a message body the filter reads: the text, and the caption of an image, file or video.
FILTERED_FIELDS = ("text", "caption")


#: Default-ignorable characters that are not format (Cf) characters: the combining grapheme joiner, Hangul
#: fillers and variation selectors.
_IGNORABLE_EXTRA = (0x034F, 0x115F, 0x1160, 0x3164, 0xFFA0, *range(0xFE00, 0xFE10), *range(0xE0100, 0xE01F0))


@functools.cache
def _invisible() -> dict[int, None]:
    """``str.translate`` table deleting every invisible character (built once, ~0.2 s)."""
    table: dict[int, None] = dict.fromkeys(_IGNORABLE_EXTRA)
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)) == "Cf":
            table[code] = None
    return table


def fold(text: str) -> str:
    """The form words and texts are matched in: NFKC, case-folded, invisible characters removed."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text.translate(_invisible())).casefold().translate(_invisible())


def _folded_with_origins(text: str) -> tuple[str, list[int], list[int]]:
    """``fold(text)`` built cluster by cluster (a character and the combining marks after it, so NFKC can
    compose them), with, for each folded character, where its cluster starts and ends in ``text``."""
    invisible = _invisible()
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and (unicodedata.combining(text[j]) or ord(text[j]) in invisible):
            j += 1
        folded = unicodedata.normalize("NFKC", text[i:j].translate(invisible)).casefold().translate(invisible)
        parts.append(folded)
        starts += [i] * len(folded)
        ends += [j] * len(folded)
        i = j
    return "".join(parts), starts, ends


def normalize(word: str) -> str:
    cleaned = fold(word.strip()).strip()
    if not 1 <= len(cleaned) <= MAX_WORD_CHARS:
        raise invalid("words", f"each word is 1 to {MAX_WORD_CHARS} characters")
    return cleaned


class WordFilter:
    def __init__(self, config: Config, storage: Storage) -> None:
        self.mode = config.word_filter
        self.storage = storage
        self.refresh_s = config.word_refresh_s
        self.version = -1
        self.words: tuple[str, ...] = ()
        self._pattern: re.Pattern[str] | None = None
        # Its own log line on failure (the event name operators grep for), so never a failure for Periodic.
        self._refresher = Periodic("word-filter", self.refresh_s, self._keep_fresh)

    # -- the cached list --------------------------------------------------------------------------
    async def load(self) -> None:
        version, words = await self.storage.words()
        self._use(version, words)

    def _use(self, version: int, words: list[str]) -> None:
        self.version = version
        self.words = tuple(words)
        folded = {fold(word) for word in words} - {""}  # lists stored before folding existed are folded here
        if not folded:
            self._pattern = None
            return
        _invisible()  # built now, not on the first message
        # Longest first, so "badword" is replaced whole rather than as "bad" + "word".
        alternatives = sorted(folded, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, alternatives)), re.IGNORECASE)

    async def refresh(self) -> bool:
        """Reload if the list changed since it was loaded; True if it did."""
        if await self.storage.words_version() == self.version:
            return False
        await self.load()
        return True

    def start(self) -> None:
        self._refresher.start()

    async def close(self) -> None:
        await self._refresher.stop()

    async def _keep_fresh(self) -> None:
        try:
            if await self.refresh():
                log.info("word_list_reloaded", extra={"words": len(self.words), "version": self.version})
        except Exception as exc:  # the database is down: keep filtering with the list we have
            log.warning("word_list_refresh_failed", extra={"error": str(exc)})

    # -- checking ---------------------------------------------------------------------------------
    def find(self, text: str) -> list[str]:
        if self._pattern is None:
            return []
        return sorted({m.group(0) for m in self._pattern.finditer(fold(text))})

    def _replace(self, pattern: re.Pattern[str], text: str) -> str:
        if text.isascii():
            return pattern.sub(REPLACEMENT, text)
        if pattern.search(fold(text)) is None:
            return text
        folded, starts, ends = _folded_with_origins(text)
        out: list[str] = []
        at = 0
        for match in pattern.finditer(folded):
            if match.end() == match.start():
                continue
            start, end = starts[match.start()], ends[match.end() - 1]
            if start < at:  # two matches inside one cluster: the first already covered it
                continue
            out += [text[at:start], REPLACEMENT]
            at = end
        return "".join(out) + text[at:]

    def apply(self, body: dict[str, Any]) -> None:
        """Filter a message body in place: replace listed words with ***, or refuse the message."""
        if self._pattern is None or self.mode == "off":
            return
        for field in FILTERED_FIELDS:
            value = body.get(field)
            if not isinstance(value, str) or not value:
                continue
            if self.mode == "reject":
                if self._pattern.search(fold(value)):
                    # The words are not named: the sender knows what they wrote, and a list of the
                    # server's words is what someone probing the filter wants.
                    raise HubbubError(Code.CONTENT_REJECTED, "the message contains words this server refuses")
            else:
                body[field] = self._replace(self._pattern, value)
