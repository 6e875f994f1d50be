"""Usernames and nicknames: the one rule for new accounts, profile edits and the admin tools.

- A **username** is 3 to 32 of ``A-Z a-z 0-9 _ . -``, the whole string (``fullmatch``: ``re.match`` with
  ``$`` once let ``"name\\n"`` register beside ``"name"``). Unique without regard to case.
- A **nickname** has its format characters (Unicode category Cf: bidi overrides and isolates, zero-width
  spaces and joiners, the BOM) removed and its ends stripped; what is left must be 1 to 64 characters with no
  control characters (Cc). So a nickname cannot reorder the text around it or be invisible.
- **Reserved**: nobody but the server's own account may be called by its display name ("Hubbub"), as a
  username or a nickname, in any case, width or look-alike letters: names are compared by :func:`skeleton`
  (NFKC, casefold, letters that look alike mapped to one, everything but letters and digits dropped). The
  real server account is also marked ``system: true`` in every user object, which clients show as a badge.
"""

from __future__ import annotations

import re
import unicodedata

from hubbub.core.errors import invalid

USERNAME_RE = re.compile(r"[A-Za-z0-9_.-]{3,32}")
NICKNAME_MAX = 64
#: The display name of the server's own account (services/admin.py): reserved for it.
SERVER_NICKNAME = "Hubbub"

# Letters that render like a Latin letter or digit, after NFKC and casefold (a short table for the reserved
# names' letters and the usual suspects, not the whole of Unicode's confusables.txt).
_LOOKALIKE = str.maketrans(
    {
        "а": "a", "α": "a", "ь": "b", "в": "b", "ƅ": "b", "ꮟ": "b", "с": "c", "ϲ": "c", "ԁ": "d",
        "е": "e", "ε": "e", "һ": "h", "н": "h", "і": "i", "ι": "i", "1": "l", "|": "l", "ӏ": "l",
        "ј": "j", "к": "k", "κ": "k", "м": "m", "п": "n", "η": "n", "о": "o", "ο": "o", "0": "o",
        "σ": "o", "р": "p", "ρ": "p", "ԛ": "q", "ѕ": "s", "т": "t", "τ": "t", "υ": "u", "ս": "u",
        "μ": "u", "ν": "v", "ѵ": "v", "ԝ": "w", "ω": "w", "х": "x", "χ": "x", "у": "y", "γ": "y",
        "ʏ": "y", "ᴜ": "u", "ʜ": "h", "ʙ": "b",
    }
)  # fmt: skip
_RESERVED = frozenset({"hubbub"})


def skeleton(name: str) -> str:
    """What a name looks like, for telling whether two names could be mistaken for each other."""
    folded = unicodedata.normalize("NFKC", name).casefold().translate(_LOOKALIKE)
    return "".join(ch for ch in folded if ch.isalnum())


def reserved(name: str) -> bool:
    return skeleton(name) in _RESERVED


def check_username(username: str) -> None:
    if not USERNAME_RE.fullmatch(username):
        raise invalid("username", "3 to 32 letters, digits, '_', '.' or '-'")
    if reserved(username):
        raise invalid("username", "this name is reserved for the server")


def visible(nickname: str) -> str:
    """The nickname without its format characters and surrounding white space."""
    return "".join(ch for ch in nickname if unicodedata.category(ch) != "Cf").strip()


def clean_nickname(nickname: str) -> str:
    """The nickname to store (format characters removed, ends stripped), or ``invalid_field``."""
    nick = visible(nickname)
    if not 1 <= len(nick) <= NICKNAME_MAX:
        raise invalid("nickname", f"1 to {NICKNAME_MAX} visible characters")
    if any(unicodedata.category(ch) == "Cc" for ch in nick):
        raise invalid("nickname", "must not contain control characters")
    if reserved(nick):
        raise invalid("nickname", "this name is reserved for the server")
    return nick


def check_new_user(username: str, nickname: str | None) -> str:
    """Validate a new account's names (registration and the admin tools alike); the nickname to store."""
    check_username(username)
    return clean_nickname(nickname or username)
