"""Helpers shared by the SQL storage modules: row mapping and the 'database unavailable' translation."""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

import msgspec
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message, User
from hubbub.engines.storage import schema as t

P = ParamSpec("P")
R = TypeVar("R")

json_encode = msgspec.json.encode
json_decode = msgspec.json.Decoder(dict[str, Any]).decode


def unavailable(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Turn 'the database is not answering' into the client-facing UNAVAILABLE error."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except IntegrityError:
            raise
        except (OperationalError, DBAPIError, OSError, ConnectionError, PoolTimeout) as exc:
            # PoolTimeout: every connection busy for pool_timeout seconds, an overload the client may retry.
            raise HubbubError(Code.UNAVAILABLE, "storage is unavailable, nothing was stored") from exc

    return wrapper


def user_of(row: Row[Any] | Any) -> User:
    return User(
        id=row.id,
        username=row.username,
        nickname=row.nickname,
        signature=row.signature,
        avatar=row.avatar,
        # Server accounts' names start with "~", which no username may (services/names.py); so do closed
        # accounts' ("~deleted-<id>", engines/storage/sql_lifecycle.py), which are no server's.
        system=row.username.startswith("~") and not row.username.startswith("~deleted-"),
        deleted=row.username.startswith("~deleted-"),
    )


def message_of(row: Row[Any]) -> Message:
    return Message(
        id=str(row.id),
        conv=row.conv,
        seq=row.seq,
        sender=row.sender,
        type=row.type,
        body=json_decode(row.body),
        ts=row.ts,
        cmid=row.cmid,
        recalled=bool(row.recalled),
    )


USER_COLS = (t.users.c.id, t.users.c.username, t.users.c.nickname, t.users.c.signature, t.users.c.avatar)


def like_prefix(prefix: str) -> str:
    """A LIKE pattern (escape character ``\\``) matching strings that start with ``prefix``, lower-cased."""
    return prefix.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


#: serialization_failure, deadlock_detected: PostgreSQL asks for the transaction to be run again.
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})


def sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    cause = getattr(orig, "__cause__", None)
    if code is None and cause is not None:
        code = getattr(cause, "sqlstate", None)
    return code if isinstance(code, str) else None
