"""Helpers shared by the security tests: the documented error table, and a node with test-friendly limits."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def documented_errors() -> dict[str, int | None]:
    """code -> HTTP status, parsed from docs/protocol.md's "Error codes" table (None: WebSocket only)."""
    table: dict[str, int | None] = {}
    for line in (DOCS / "protocol.md").read_text().splitlines():
        match = re.match(r"^\| `([a-z_]+)` \| (\d{3}|—) \|", line)
        if match:
            table[match.group(1)] = int(match.group(2)) if match.group(2).isdigit() else None
    return table


def documented_close_codes() -> set[int]:
    codes: set[int] = set()
    for line in (DOCS / "protocol.md").read_text().splitlines():
        match = re.match(r"^\| (\d{4})(?: / (\d{4}))? \|", line)
        if match:
            codes.update(int(g) for g in match.groups() if g)
    return codes


#: Limits that would get in the way of tests making many requests from 127.0.0.1 (each test that checks a
#: limit sets its own).
RELAXED = {
    "ip_limit_exempt": "127.0.0.0/8",
    "group_create_per_hour": 10_000,
    "send_burst": 10_000,
    "call_invite_burst": 10_000,
}
