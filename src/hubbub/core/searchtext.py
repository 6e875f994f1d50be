"""What search sees of a message, how a query becomes terms, and where the terms are in a result.

Pure functions shared by the storage engines (the indexer stores ``index_text``) and the search service
(queries, highlights), so both engines index and highlight exactly alike (docs/protocol.md, "Search").

- The searchable text of a message is its ``text``, or for an upload message its ``caption`` and file
  ``name``; notices (``system``, ``recall``) are not searchable.
- The index holds the text lower-cased (``str.lower``): matching is case-insensitive for every script, with
  no database collation involved.
- A query is split on white space into at most ``MAX_TERMS`` terms; a message matches when it contains every
  term as a substring (no word boundaries: Chinese and Japanese have none). Terms are data, never query
  syntax: each engine quotes or escapes them (FTS5 phrase quoting, LIKE escaping).
"""

from __future__ import annotations

from typing import Any

#: Message types search covers (the filter ``kind`` takes these).
KINDS = ("text", "image", "file", "voice", "video")
#: Terms per query, and the longest query accepted (characters).
MAX_TERMS = 8
MAX_QUERY_CHARS = 200
#: Terms shorter than this have no trigram: the engines answer them by a bounded scan (``SHORT_SCAN``).
TRIGRAM = 3


def searchable_text(msg_type: str, body: dict[str, Any]) -> str:
    """The text a message is found by: empty when it has none (then it is not indexed)."""
    if msg_type == "text":
        text = body.get("text")
        return text if isinstance(text, str) else ""
    if msg_type in KINDS:
        parts = [body.get("caption"), body.get("name")]
        return "\n".join(p for p in parts if isinstance(p, str) and p)
    return ""


def index_text(msg_type: str, body: dict[str, Any], recalled: bool = False) -> str:
    """What the index stores for a message: its searchable text lower-cased, or "" (not indexed)."""
    return "" if recalled else searchable_text(msg_type, body).lower()


def terms_of(query: str) -> list[str]:
    """The lower-cased terms of a query, duplicates and terms contained in another term dropped."""
    words = [w for w in query.lower().split() if w]
    unique: list[str] = []
    for word in sorted(set(words), key=lambda w: (-len(w), w)):
        if not any(word in kept for kept in unique):
            unique.append(word)
    return unique


def highlights(text: str, terms: list[str]) -> list[tuple[int, int]]:
    """[start, end) character ranges of every occurrence of the terms in ``text``, merged and sorted.

    Found on the lower-cased text; where lower-casing changes the length (a few letters such as "İ"), the
    offsets would not line up, and no ranges are given rather than wrong ones."""
    lowered = text.lower()
    if len(lowered) != len(text):
        return []
    spans: list[tuple[int, int]] = []
    for term in terms:
        start = lowered.find(term)
        while start >= 0:
            spans.append((start, start + len(term)))
            start = lowered.find(term, start + len(term))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def fts5_phrase(term: str) -> str:
    """An FTS5 string literal for ``term``: double quotes doubled, so no character is query syntax."""
    return '"' + term.replace('"', '""') + '"'


def like_contains(term: str) -> str:
    """A LIKE pattern (escape ``\\``) matching text that contains ``term``."""
    return "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
