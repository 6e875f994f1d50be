"""Passwords: the rule a new password must meet, and the one argon2 hasher of a node (docs/security.md).

**The rule** (docs/protocol.md, "Accounts"): 8 to 256 characters (``invalid_field`` otherwise), and not
blank, one character repeated, or one of the common passwords in ``common-passwords.txt`` compared without
regard to case (``weak_password``). The list is the 11,611 entries of 8 or more characters among the 30,000
most common passwords that zxcvbn ships (zxcvbn-python 4.5.0, MIT); it is a file in the package rather than a
dependency because importing zxcvbn's lists costs over a second and 12 MB per process for the one list this
needs. Regenerate with::

    from zxcvbn.frequency_lists import FREQUENCY_LISTS
    [p for p in FREQUENCY_LISTS["passwords"] if len(p) >= 8]

**The hasher.** argon2 is slow and memory-hard on purpose, so it runs off the event loop, in a thread pool of
its own (``password_hash_workers`` threads). Its own, because a pool shared with other slow work (media
probing once was) lets that work delay every login, and bounded, because the threads are what caps the CPU
and memory password hashing can take at once: a burst of requests waits in the pool's queue rather than
running dozens of 64 MiB hashes side by side. Who may queue how much is the rate limits' job (login per
username and address, password change per user and session, registration per address).
"""

from __future__ import annotations

import asyncio
import functools
import secrets
from concurrent.futures import ThreadPoolExecutor
from importlib import resources

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError, invalid

MIN_PASSWORD = 8
MAX_PASSWORD = 256
_LIST = "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The common-password list, read once per process (about 10 ms)."""
    text = resources.files("hubbub.services").joinpath(_LIST).read_text("utf-8")
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def check_new_password(password: str, field: str = "password") -> None:
    """Raise unless ``password`` may be set as a new password (the rule in the module docstring)."""
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise invalid(field, f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if not password.strip():
        raise HubbubError(Code.WEAK_PASSWORD, f"{field}: must not be blank")
    if len(set(password)) == 1:
        raise HubbubError(Code.WEAK_PASSWORD, f"{field}: must not be one character repeated")
    if password.lower() in common_passwords():
        raise HubbubError(Code.WEAK_PASSWORD, f"{field}: is one of the most common passwords, choose another")


class Passwords:
    """Hash and verify with argon2 in a bounded pool of threads of its own."""

    def __init__(self, config: Config) -> None:
        self._hasher = PasswordHasher(
            time_cost=config.argon2_time_cost, memory_cost=config.argon2_memory_kib, parallelism=1
        )
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, config.password_hash_workers), thread_name_prefix="argon2"
        )
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash (no such user), verify against a real hash anyway and
        answer False, so login takes the same time whether or not the username exists."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_hex(8))
            password_hash = self._dummy
            password = ""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, self._hasher.verify, password_hash, password
            )
        except (VerificationError, InvalidHashError):
            return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
