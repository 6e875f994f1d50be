"""SQL implementation of ``AdminStorage``; mixed into ``SqlStorage``, whose transaction helpers it uses."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import UserRecord
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import USER_COLS, unavailable, user_of

WORDS_VERSION = "words_version"
#: Server accounts (the notice sender) have names starting with this; registration never allows it.
SERVER_ACCOUNT_PREFIX = "~"

_RECORD_COLS = (
    *USER_COLS,
    t.users.c.banned,
    t.users.c.is_admin,
    t.users.c.created_at,
    t.users.c.canary,
    t.users.c.banned_until,
    t.users.c.ban_reason,
    t.users.c.deleted_at,
)


def record_of(row: Row[Any] | Any) -> UserRecord:
    return UserRecord(
        user=user_of(row),
        banned=bool(row.banned),
        is_admin=bool(row.is_admin),
        created_at=row.created_at,
        canary=bool(row.canary),
        banned_until=row.banned_until,
        ban_reason=row.ban_reason,
        deleted=row.deleted_at is not None,
    )


class SqlAdmin(SqlHost):
    @unavailable
    async def set_user_flags(
        self,
        user_id: int,
        *,
        banned: bool | None = None,
        is_admin: bool | None = None,
        canary: bool | None = None,
    ) -> UserRecord | None:
        flags = (("banned", banned), ("is_admin", is_admin), ("canary", canary))
        values = {k: v for k, v in flags if v is not None}
        async with self._tx() as conn:
            if values:
                await conn.execute(update(t.users).where(t.users.c.id == user_id).values(**values))
            row = (await conn.execute(select(*_RECORD_COLS).where(t.users.c.id == user_id))).first()
        return None if row is None else record_of(row)

    @unavailable
    async def purge_canary_messages(self, before_ts: int) -> int:
        canaries = select(t.users.c.id).where(t.users.c.canary.is_(True))
        async with self._tx() as conn:
            result = await conn.execute(
                delete(t.messages).where(t.messages.c.sender.in_(canaries), t.messages.c.ts < before_ts)
            )
        return int(result.rowcount or 0)

    @unavailable
    async def canary_user_ids(self) -> list[int]:
        query = select(t.users.c.id).where(t.users.c.canary.is_(True)).order_by(t.users.c.id)
        async with self.engine.connect() as conn:
            return [int(row.id) for row in await conn.execute(query)]

    @unavailable
    async def ban_user(self, user_id: int) -> UserRecord | None:
        async with self._tx() as conn:
            await conn.execute(
                update(t.users).where(t.users.c.id == user_id).values(banned=True, banned_until=0, ban_reason="")
            )
            row = (await conn.execute(select(*_RECORD_COLS).where(t.users.c.id == user_id))).first()
            if row is None:
                return None
            # Every session, seen by a statement that runs after the row lock above: one created by a
            # login that got in first is committed and revoked here (SqlStorage.create_session).
            await conn.execute(
                update(t.sessions)
                .where(t.sessions.c.user_id == user_id, t.sessions.c.revoked.is_(False))
                .values(revoked=True)
            )
        return record_of(row)

    @unavailable
    async def user_record(self, user_id: int) -> UserRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(*_RECORD_COLS).where(t.users.c.id == user_id))).first()
        return None if row is None else record_of(row)

    @unavailable
    async def user_records(self, query: str, after: int, limit: int) -> list[UserRecord]:
        stmt = select(*_RECORD_COLS).where(t.users.c.id > after)
        if query:
            escaped = query.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            stmt = stmt.where(
                or_(
                    t.users.c.username_lower.like(escaped, escape="\\"),
                    func.lower(t.users.c.nickname).like(escaped, escape="\\"),
                )
            )
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt.order_by(t.users.c.id).limit(limit))
            return [record_of(row) for row in rows]

    @unavailable
    async def active_user_ids(self, after: int, limit: int) -> list[int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.users.c.id)
                .where(
                    t.users.c.id > after,
                    t.users.c.banned.is_(False),
                    ~t.users.c.username.startswith(SERVER_ACCOUNT_PREFIX, autoescape=True),
                )
                .order_by(t.users.c.id)
                .limit(limit)
            )
            return [row.id for row in rows]

    @unavailable
    async def words(self) -> tuple[int, list[str]]:
        async with self.engine.connect() as conn:
            version = await _version(conn)
            rows = await conn.execute(select(t.sensitive_words.c.word).order_by(t.sensitive_words.c.word))
            return version, [row.word for row in rows]

    @unavailable
    async def words_version(self) -> int:
        async with self.engine.connect() as conn:
            return await _version(conn)

    @unavailable
    async def change_words(self, add: list[str], remove: list[str], now: int) -> int:
        sw = t.sensitive_words
        changed = 0
        async with self._tx() as conn:
            if remove:
                result = await conn.execute(delete(sw).where(sw.c.word.in_(set(remove))))
                changed += result.rowcount
            if add:
                present = set(
                    (await conn.execute(select(sw.c.word).where(sw.c.word.in_(set(add))))).scalars()
                )
                fresh = sorted(set(add) - present)
                if fresh:
                    await conn.execute(insert(sw), [{"word": w, "added_at": now} for w in fresh])
                changed += len(fresh)
            if changed:
                version = await _version(conn) + 1
                updated = await conn.execute(
                    update(t.settings).where(t.settings.c.key == WORDS_VERSION).values(value=str(version))
                )
                if updated.rowcount == 0:
                    await conn.execute(insert(t.settings).values(key=WORDS_VERSION, value=str(version)))
        return changed

    @unavailable
    async def system_user(self, username: str, nickname: str, now: int) -> int:
        assert username.startswith(SERVER_ACCOUNT_PREFIX)
        lookup = select(t.users.c.id).where(t.users.c.username_lower == username.lower())
        async with self.engine.connect() as conn:
            found = (await conn.execute(lookup)).scalar_one_or_none()
        if found is not None:
            return int(found)
        try:
            async with self._tx() as conn:
                await conn.execute(
                    insert(t.users).values(
                        username=username,
                        username_lower=username.lower(),
                        nickname=nickname,
                        signature="",
                        # Not an argon2 hash: no password ever matches, so nobody can log in as it.
                        password_hash="!",
                        banned=False,
                        is_admin=False,
                        created_at=now,
                    )
                )
        except IntegrityError:
            pass  # another node created it meanwhile
        async with self.engine.connect() as conn:
            return int((await conn.execute(lookup)).scalar_one())


async def _version(conn: AsyncConnection) -> int:
    raw = (
        await conn.execute(select(t.settings.c.value).where(t.settings.c.key == WORDS_VERSION))
    ).scalar_one_or_none()
    return int(raw) if raw is not None else 0
