"""The pure rules of the social layer (issue 15), tested cell by cell in tests/unit/services/test_social_rules.py:
who sees whose last seen, what a remark or a device id may be, and when a voice note's claimed duration is
believable."""

from __future__ import annotations

import re
import unicodedata

from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.engines.storage.base_social import LastSeenPrivacy
from hubbub.services.names import visible

PRIVACY_VALUES: tuple[LastSeenPrivacy, ...] = ("everyone", "friends", "nobody")
REMARK_MAX = 64
DEVICE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: A voice or video file's average bitrate at its claimed duration must lie in this range (bits per second):
#: Opus speech at its lowest is ~6 kbit/s, and no phone records audio above 2 Mbit/s.
MIN_BITRATE = 2_000
MAX_BITRATE = 2_000_000


def last_seen_visible(privacy: str, *, friends: bool, blocked: bool) -> bool:
    """Whether a viewer may see a user's last seen: never when the user blocked the viewer."""
    if blocked:
        return False
    if privacy == "everyone":
        return True
    if privacy == "friends":
        return friends
    return False


def clean_remark(remark: str) -> str:
    """A remark as stored: the nickname's cleaning (format characters removed, ends trimmed); "" clears."""
    value = visible(remark)
    if len(value) > REMARK_MAX:
        raise invalid("remark", f"at most {REMARK_MAX} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise invalid("remark", "must not contain control characters")
    return value


def check_privacy(value: object) -> LastSeenPrivacy:
    for allowed in PRIVACY_VALUES:
        if value == allowed:
            return allowed
    raise invalid("last_seen", "one of everyone, friends, nobody")


def valid_device(device: str) -> bool:
    return DEVICE_RE.fullmatch(device) is not None


def claimed_duration(claim: float, size: int, max_seconds: int) -> float:
    """A client's duration for a file whose container does not say (a browser's WebM), if believable."""
    if claim != claim or claim <= 0:  # NaN, zero, negative
        raise invalid("duration", "must be a positive number of seconds")
    if claim > max_seconds:
        raise HubbubError(Code.TOO_LARGE, f"voice notes are at most {max_seconds} seconds")
    bitrate = size * 8 / claim
    if not MIN_BITRATE <= bitrate <= MAX_BITRATE:
        raise invalid("duration", "does not fit the file's size")
    return round(claim, 3)
