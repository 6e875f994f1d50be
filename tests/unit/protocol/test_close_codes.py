"""The close-code rule of docs/protocol.md ("Close codes"): terminal or reconnect, decided by range alone."""

import re
from pathlib import Path

import pytest

from hubbub.protocol.close_codes import TERMINAL_MAX, TERMINAL_MIN, Close, is_terminal

DOCS = Path(__file__).resolve().parents[3] / "docs" / "protocol.md"


@pytest.mark.parametrize("code", [Close.PROTOCOL, Close.UNAUTHORIZED, Close.REVOKED, Close.REPLACED])
def test_codes_that_need_the_client_to_act_are_terminal(code):
    assert is_terminal(code)


@pytest.mark.parametrize(
    "code",
    [
        Close.NORMAL,
        Close.GOING_AWAY,
        Close.TOO_BIG,
        Close.DRAINING,
        Close.HEARTBEAT_TIMEOUT,
        Close.SLOW_CONSUMER,
        Close.TOO_MANY_CONNECTIONS,
    ],
)
def test_passing_conditions_reconnect(code):
    assert not is_terminal(code)


@pytest.mark.parametrize(
    ("code", "terminal"),
    [
        (None, False),  # the socket dropped without a close frame
        (1006, False),
        (1011, False),
        (3000, False),
        (3999, False),
        (4000, True),
        (4123, True),
        (4499, True),
        (4500, False),
        (4777, False),
        (4999, False),
    ],
)
def test_codes_never_seen_are_classified_by_range(code, terminal):
    assert is_terminal(code) is terminal


def test_every_code_sits_in_the_half_its_doc_row_says():
    """The table of docs/protocol.md and the enum agree, code by code, and every row's advice matches the
    range rule (a terminal row in 4000-4499, a reconnect row elsewhere)."""
    rows: dict[int, str] = {}
    for line in DOCS.read_text().splitlines():
        match = re.match(r"^\| (\d{4})(?: / (\d{4}))? \| [^|]+ \| ([^|]+) \|", line)
        if match:
            for group in match.group(1, 2):
                if group:
                    rows[int(group)] = match.group(3)
    assert set(rows) == {int(c) for c in Close}
    for code, advice in rows.items():
        assert ("**terminal**" in advice) is is_terminal(code), (code, advice)
        assert ("**terminal**" in advice) is (TERMINAL_MIN <= code <= TERMINAL_MAX)
