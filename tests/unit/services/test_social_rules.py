"""The pure rules of issue 15 (services/social_rules.py), cell by cell."""

from __future__ import annotations

import math

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.services.social_rules import (
    check_privacy,
    claimed_duration,
    clean_remark,
    last_seen_visible,
    valid_device,
)


@pytest.mark.parametrize(
    ("privacy", "friends", "blocked", "visible"),
    [
        ("everyone", False, False, True),
        ("everyone", True, False, True),
        ("friends", True, False, True),
        ("friends", False, False, False),
        ("nobody", True, False, False),
        ("nobody", False, False, False),
        ("everyone", True, True, False),  # a user who blocked the viewer shows nothing
        ("friends", True, True, False),
    ],
)
def test_who_sees_last_seen(privacy: str, friends: bool, blocked: bool, visible: bool) -> None:
    assert last_seen_visible(privacy, friends=friends, blocked=blocked) is visible


def test_remarks_are_cleaned_like_nicknames() -> None:
    assert clean_remark("  Mum\u200b ") == "Mum"
    assert clean_remark("") == ""
    assert clean_remark("\u202e") == ""  # only format characters: cleared
    assert clean_remark("x" * 64) == "x" * 64
    for bad in ("x" * 65, "a\x07b"):
        with pytest.raises(HubbubError) as err:
            clean_remark(bad)
        assert err.value.code is Code.INVALID_FIELD


def test_privacy_values() -> None:
    assert [check_privacy(v) for v in ("everyone", "friends", "nobody")] == ["everyone", "friends", "nobody"]
    for bad in ("Everyone", "", None, 1):
        with pytest.raises(HubbubError):
            check_privacy(bad)


@pytest.mark.parametrize(
    ("device", "ok"),
    [("t-3f9a", True), ("A_b-9", True), ("x" * 64, True), ("", False), ("x" * 65, False), ("a#b", False),
     ("a b", False), ("é", False), ("a/b", False)],
)
def test_device_ids(device: str, ok: bool) -> None:
    assert valid_device(device) is ok


def test_claimed_durations() -> None:
    assert claimed_duration(7.4, 7 * 4000, 600) == 7.4  # 32 kbit/s Opus
    cases = [
        (0.0, 1000, Code.INVALID_FIELD),
        (-1.0, 1000, Code.INVALID_FIELD),
        (math.nan, 1000, Code.INVALID_FIELD),
        (601.0, 601 * 4000, Code.TOO_LARGE),
        (600.0, 100, Code.INVALID_FIELD),  # 1.3 bit/s: no recording is that small
        (0.01, 1_000_000, Code.INVALID_FIELD),  # 800 Mbit/s
    ]
    for claim, size, code in cases:
        with pytest.raises(HubbubError) as err:
            claimed_duration(claim, size, 600)
        assert err.value.code is code, (claim, size)
