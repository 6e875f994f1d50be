"""SQL implementation of ``SocialStorage`` (engines/storage/base_social.py); mixed into ``SqlStorage``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import User
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base_social import (
    ChatPrefs,
    ChatPrefsChange,
    LastSeenPrivacy,
    SessionRow,
    Social,
)
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import USER_COLS, unavailable, user_of

_PREF_FIELDS = ("pinned", "muted", "archived", "marked_unread")


def _prefs_of(row: Any) -> ChatPrefs:
    return ChatPrefs(
        conv=row.conv,
        pinned=row.pinned,
        muted=bool(row.muted),
        archived=bool(row.archived),
        marked_unread=bool(row.marked_unread),
        updated_at=row.updated_at,
    )


def _is_default(p: ChatPrefs) -> bool:
    return not (p.pinned or p.muted or p.archived or p.marked_unread)


class SqlSocial(SqlHost):
    # -- blocks -------------------------------------------------------------------------------------
    @unavailable
    async def block(self, user_id: int, target: int, now: int) -> int:
        b = t.blocks
        async with self._tx() as conn:
            await conn.execute(
                self._insert_ignore(b), [{"user_id": user_id, "blocked_id": target, "since": now}]
            )
            fr = t.friend_requests
            between = or_(
                and_(fr.c.from_id == user_id, fr.c.to_id == target),
                and_(fr.c.from_id == target, fr.c.to_id == user_id),
            )
            await conn.execute(update(fr).where(between, fr.c.status == "pending").values(status="declined"))
            since = (
                await conn.execute(select(b.c.since).where(b.c.user_id == user_id, b.c.blocked_id == target))
            ).scalar_one()
        return int(since)

    @unavailable
    async def unblock(self, user_id: int, target: int) -> bool:
        b = t.blocks
        async with self._tx() as conn:
            result = await conn.execute(delete(b).where(b.c.user_id == user_id, b.c.blocked_id == target))
        return bool(result.rowcount)

    @unavailable
    async def blocks(self, user_id: int) -> list[tuple[User, int]]:
        b = t.blocks
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*USER_COLS, b.c.since)
                .join(b, b.c.blocked_id == t.users.c.id)
                .where(b.c.user_id == user_id)
                .order_by(b.c.since.desc(), t.users.c.id)
            )
            return [(user_of(row), row.since) for row in rows]

    @unavailable
    async def blocking(self, a: int, b: int) -> bool:
        bl = t.blocks
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(bl.c.user_id)
                    .where(
                        or_(
                            and_(bl.c.user_id == a, bl.c.blocked_id == b),
                            and_(bl.c.user_id == b, bl.c.blocked_id == a),
                        )
                    )
                    .limit(1)
                )
            ).first()
        return row is not None

    @unavailable
    async def blockers_among(self, user_id: int, others: Sequence[int]) -> set[int]:
        if not others:
            return set()
        b = t.blocks
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(b.c.user_id).where(b.c.blocked_id == user_id, b.c.user_id.in_(list(others)))
            )
            return set(rows.scalars())

    # -- remarks ------------------------------------------------------------------------------------
    @unavailable
    async def set_remark(self, user_id: int, target: int, remark: str) -> None:
        r = t.contact_remarks
        async with self._tx() as conn:
            await conn.execute(delete(r).where(r.c.user_id == user_id, r.c.target_id == target))
            if remark:
                await conn.execute(r.insert().values(user_id=user_id, target_id=target, remark=remark))

    @unavailable
    async def remarks(self, user_id: int, targets: Sequence[int] | None = None) -> dict[int, str]:
        r = t.contact_remarks
        stmt = select(r.c.target_id, r.c.remark).where(r.c.user_id == user_id)
        if targets is not None:
            if not targets:
                return {}
            stmt = stmt.where(r.c.target_id.in_(list(targets)))
        async with self.engine.connect() as conn:
            return {row.target_id: row.remark for row in await conn.execute(stmt)}

    # -- chat preferences ---------------------------------------------------------------------------
    @unavailable
    async def set_chat_prefs(
        self, user_id: int, conv: str, change: ChatPrefsChange, now: int, max_pinned: int
    ) -> ChatPrefs:
        p = t.chat_prefs
        key = (p.c.user_id == user_id, p.c.conv == conv)
        async with self._tx() as conn:
            row = (await conn.execute(select(p).where(*key).with_for_update())).first()
            current = _prefs_of(row) if row is not None else ChatPrefs(conv=conv)
            pinned = current.pinned
            if change.pinned is True and not pinned:
                # The user's row serialises pins of different chats (PostgreSQL; SQLite's writer does anyway),
                # so two racing pins cannot both pass the count.
                await conn.execute(select(t.users.c.id).where(t.users.c.id == user_id).with_for_update())
                count = (
                    await conn.execute(
                        select(func.count()).select_from(p).where(p.c.user_id == user_id, p.c.pinned > 0)
                    )
                ).scalar_one()
                if count >= max_pinned:
                    raise HubbubError(Code.CONFLICT, f"at most {max_pinned} chats can be pinned")
                pinned = now
            elif change.pinned is False:
                pinned = 0
            new = ChatPrefs(
                conv=conv,
                pinned=pinned,
                muted=current.muted if change.muted is None else change.muted,
                archived=current.archived if change.archived is None else change.archived,
                marked_unread=current.marked_unread if change.marked_unread is None else change.marked_unread,
                updated_at=now,
            )
            await conn.execute(delete(p).where(*key))
            if not _is_default(new):
                values = {f: getattr(new, f) for f in _PREF_FIELDS}
                await conn.execute(p.insert().values(user_id=user_id, conv=conv, updated_at=now, **values))
        return new

    @unavailable
    async def chat_prefs(self, user_id: int, conv: str | None = None) -> list[ChatPrefs]:
        p = t.chat_prefs
        stmt = select(p).where(p.c.user_id == user_id)
        if conv is not None:
            stmt = stmt.where(p.c.conv == conv)
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt.order_by(p.c.pinned.desc(), p.c.conv))
            return [_prefs_of(row) for row in rows]

    @unavailable
    async def muted_by(self, conv: str, users: Sequence[int]) -> set[int]:
        if not users:
            return set()
        p = t.chat_prefs
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(p.c.user_id).where(p.c.conv == conv, p.c.muted.is_(True), p.c.user_id.in_(list(users)))
            )
            return set(rows.scalars())

    @unavailable
    async def clear_marked_unread(self, user_id: int, conv: str, now: int) -> ChatPrefs | None:
        p = t.chat_prefs
        key = (p.c.user_id == user_id, p.c.conv == conv)
        async with self._tx() as conn:
            done = await conn.execute(
                update(p).where(*key, p.c.marked_unread.is_(True)).values(marked_unread=False, updated_at=now)
            )
            if not done.rowcount:
                return None
            row = (await conn.execute(select(p).where(*key))).first()
            assert row is not None
            prefs = _prefs_of(row)
            if _is_default(prefs):
                await conn.execute(delete(p).where(*key))
        return prefs

    # -- last seen ----------------------------------------------------------------------------------
    @unavailable
    async def social(self, user_ids: Sequence[int]) -> dict[int, Social]:
        found: dict[int, Social] = {}
        if user_ids:
            s = t.user_social
            async with self.engine.connect() as conn:
                rows = await conn.execute(select(s).where(s.c.user_id.in_(list(user_ids))))
                found = {row.user_id: Social(row.last_seen_privacy, row.last_seen) for row in rows}
        return {uid: found.get(uid, Social()) for uid in user_ids}

    async def _upsert_social(self, user_id: int, **values: Any) -> None:
        s = t.user_social
        async with self._tx() as conn:
            await conn.execute(self._insert_ignore(s), [{"user_id": user_id}])
            await conn.execute(update(s).where(s.c.user_id == user_id).values(**values))

    @unavailable
    async def set_last_seen_privacy(self, user_id: int, privacy: LastSeenPrivacy) -> None:
        await self._upsert_social(user_id, last_seen_privacy=privacy)

    @unavailable
    async def set_last_seen(self, user_id: int, ts: int) -> None:
        await self._upsert_social(user_id, last_seen=ts)

    # -- sessions -----------------------------------------------------------------------------------
    @unavailable
    async def live_sessions(self, user_id: int, now: int) -> list[SessionRow]:
        s, r = t.sessions, t.refresh_tokens
        expires = select(func.max(r.c.expires_at)).where(r.c.sid == s.c.sid).correlate(s).scalar_subquery()
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(s.c.sid, s.c.created_at, s.c.last_active)
                .where(s.c.user_id == user_id, s.c.revoked.is_(False), expires > now)
                .order_by(s.c.created_at.desc(), s.c.sid)
            )
            return [SessionRow(row.sid, row.created_at, max(row.last_active, row.created_at)) for row in rows]

    @unavailable
    async def touch_session(self, sid: str, now: int) -> None:
        async with self._tx() as conn:
            await conn.execute(update(t.sessions).where(t.sessions.c.sid == sid).values(last_active=now))

    @unavailable
    async def revoke_user_session(self, user_id: int, sid: str) -> bool:
        s = t.sessions
        async with self._tx() as conn:
            done = await conn.execute(
                update(s)
                .where(s.c.sid == sid, s.c.user_id == user_id, s.c.revoked.is_(False))
                .values(revoked=True)
            )
        return bool(done.rowcount)

    @unavailable
    async def update_password_hash(self, user_id: int, password_hash: str) -> None:
        async with self._tx() as conn:
            await conn.execute(
                update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
            )
