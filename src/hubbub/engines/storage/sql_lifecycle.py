"""SQL for the data lifecycle (engines/storage/lifecycle.py): retention, purged floors, exports, closing.

The purge raises a conversation's floor before it deletes anything, in its own short transaction, then deletes
in batches of bounded size: a purge of millions of rows never holds the writer (SQLite's single one, or the
conversation's row lock on PostgreSQL) for long, and a send is never blocked behind it for more than a batch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.exc import IntegrityError

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import UploadRecord
from hubbub.engines.storage.lifecycle import ConvFloor, ExportRecord, LifecycleStorage, PurgeBatch
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sql_media import body_pattern, upload_of
from hubbub.engines.storage.sqlutil import json_decode, unavailable

#: A closed account's username: ``~`` names can never be registered, so nobody can take it over.
DELETED_PREFIX = "~deleted-"
DELETED_NICKNAME = "Deleted user"
#: Message types whose body names an upload (services/media.py MEDIA_TYPES).
_MEDIA_TYPES = ("image", "file", "voice", "video")
_FINISHED = ("ready", "failed", "expired")


def _export_of(row: Any) -> ExportRecord:
    return ExportRecord(
        id=row.id,
        user_id=row.user_id,
        kind=row.kind,
        subject=row.subject,
        status=row.status,
        size=row.size,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
        expires_at=row.expires_at,
    )


def _uploads_in(body: str) -> list[str]:
    """The upload ids a stored media message body names (its own and a video's poster)."""
    try:
        decoded = json_decode(body)
    except Exception:
        return []
    found = [decoded.get("upload")]
    poster = decoded.get("poster")
    if isinstance(poster, dict):
        found.append(poster.get("upload"))
    return [u for u in found if isinstance(u, str) and u.isalnum()]


class SqlLifecycle(SqlHost, LifecycleStorage):
    # -- retention ----------------------------------------------------------------------------------
    @unavailable
    async def set_retention(self, conv: str, days: int | None, by: int, now: int) -> None:
        p = t.retention_policies
        async with self._tx() as conn:
            await conn.execute(delete(p).where(p.c.conv == conv))
            if days is not None:
                await conn.execute(insert(p).values(conv=conv, days=days, set_by=by, set_at=now))

    @unavailable
    async def retention_of(self, conv: str) -> int | None:
        p = t.retention_policies
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(p.c.days).where(p.c.conv == conv))
        return None if found is None else int(found)

    @unavailable
    async def retention_policies(self, convs: list[str]) -> dict[str, int]:
        if not convs:
            return {}
        p = t.retention_policies
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(p.c.conv, p.c.days).where(p.c.conv.in_(convs)))
            return {conv: int(days) for conv, days in rows}

    @unavailable
    async def conv_floors(self, after: str, limit: int) -> list[ConvFloor]:
        c = t.conversations
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(c.c.conv, c.c.purged_seq, c.c.max_seq)
                .where(c.c.conv > after)
                .order_by(c.c.conv)
                .limit(limit)
            )
            return [ConvFloor(conv=r.conv, purged_seq=r.purged_seq, max_seq=r.max_seq) for r in rows]

    @unavailable
    async def purged_floor(self, conv: str) -> int:
        c = t.conversations
        async with self.engine.connect() as conn:
            found = await conn.scalar(select(c.c.purged_seq).where(c.c.conv == conv))
        return int(found or 0)

    @unavailable
    async def purge_through(self, conv: str, seq: int, limit: int) -> PurgeBatch:
        c, m = t.conversations, t.messages
        async with self._tx() as conn:
            await conn.execute(
                update(c)
                .where(c.c.conv == conv, c.c.purged_seq < seq)
                .values(
                    purged_seq=func.min(seq, c.c.max_seq)
                    if self.dialect == "sqlite"
                    else func.least(seq, c.c.max_seq)
                )
            )
            floor = int(await conn.scalar(select(c.c.purged_seq).where(c.c.conv == conv)) or 0)
            rows = (
                await conn.execute(
                    select(m.c.seq, m.c.sender, m.c.type, m.c.body)
                    .where(m.c.conv == conv, m.c.seq <= floor)
                    .order_by(m.c.seq)
                    .limit(limit)
                )
            ).all()
            if not rows:
                return PurgeBatch(deleted=0)
            refs = sorted(
                {(u, r.sender) for r in rows if r.type in _MEDIA_TYPES for u in _uploads_in(r.body)}
            )
            result = await conn.execute(
                delete(m).where(m.c.conv == conv, m.c.seq >= rows[0].seq, m.c.seq <= rows[-1].seq)
            )
        return PurgeBatch(deleted=int(result.rowcount or 0), refs=refs)

    @unavailable
    async def drop_stale_upload_refs(self, refs: list[tuple[str, int]]) -> int:
        r, m = t.upload_refs, t.messages
        dropped = 0
        for upload_id, sender in refs:
            async with self._tx() as conn:
                named = await conn.scalar(
                    select(
                        exists(
                            select(literal(1)).where(
                                m.c.sender == sender,
                                m.c.type.in_(_MEDIA_TYPES),
                                m.c.body.like(body_pattern(upload_id)),
                            )
                        )
                    )
                )
                if not named:
                    result = await conn.execute(
                        delete(r).where(r.c.upload_id == upload_id, r.c.sender == sender)
                    )
                    dropped += int(result.rowcount or 0)
        return dropped

    # -- exports ------------------------------------------------------------------------------------
    @unavailable
    async def create_export(self, record: ExportRecord) -> None:
        try:
            async with self._tx() as conn:
                await conn.execute(
                    insert(t.exports).values(
                        id=record.id,
                        user_id=record.user_id,
                        kind=record.kind,
                        subject=record.subject,
                        status=record.status,
                        active_key=f"{record.kind}:{record.subject}:{record.user_id}",
                        size=0,
                        error="",
                        created_at=record.created_at,
                    )
                )
        except IntegrityError as exc:
            raise HubbubError(
                Code.CONFLICT, "an export of this is already being built: wait for it to finish"
            ) from exc

    @unavailable
    async def export_job(self, export_id: str) -> ExportRecord | None:
        e = t.exports
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(e).where(e.c.id == export_id))).first()
        return None if row is None else _export_of(row)

    @unavailable
    async def exports_of(self, user_id: int, limit: int) -> list[ExportRecord]:
        e = t.exports
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(e).where(e.c.user_id == user_id).order_by(e.c.created_at.desc(), e.c.id).limit(limit)
            )
            return [_export_of(r) for r in rows]

    @unavailable
    async def update_export(self, export_id: str, status: str, **fields: int | str) -> None:
        e = t.exports
        values: dict[str, Any] = {"status": status, **fields}
        if status in _FINISHED:
            values["active_key"] = None
        async with self._tx() as conn:
            await conn.execute(update(e).where(e.c.id == export_id).values(**values))

    @unavailable
    async def stale_exports(self, now: int, building_before: int, limit: int) -> list[ExportRecord]:
        e = t.exports
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(e)
                .where(
                    or_(
                        and_(e.c.status == "ready", e.c.expires_at < now),
                        and_(e.c.status.in_(("pending", "building")), e.c.created_at < building_before),
                    )
                )
                .limit(limit)
            )
            return [_export_of(r) for r in rows]

    @unavailable
    async def uploads_of(self, owner: int, after_id: str, limit: int) -> list[UploadRecord]:
        u = t.uploads
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(u).where(u.c.owner_id == owner, u.c.id > after_id).order_by(u.c.id).limit(limit)
            )
            return [upload_of(r) for r in rows]

    # -- accounts -----------------------------------------------------------------------------------
    @unavailable
    async def close_account(self, user_id: int, now: int) -> list[str] | None:
        users, f, fr, s = t.users, t.friendships, t.friend_requests, t.sessions
        async with self._tx() as conn:
            name = f"{DELETED_PREFIX}{user_id}"
            closed = await conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.deleted_at.is_(None))
                .values(
                    username=name,
                    username_lower=name,
                    nickname=DELETED_NICKNAME,
                    signature="",
                    avatar=None,
                    password_hash="!",  # no password verifies against it
                    banned=True,  # no session can be created (create_session reads the flag)
                    banned_until=0,
                    ban_reason="account deleted",
                    is_admin=False,
                    deleted_at=now,
                )
            )
            if not closed.rowcount:
                return None
            await conn.execute(delete(f).where(or_(f.c.user_id == user_id, f.c.friend_id == user_id)))
            await conn.execute(
                delete(fr).where(
                    or_(fr.c.from_id == user_id, fr.c.to_id == user_id), fr.c.status == "pending"
                )
            )
            # Its registration invites stop working; its requests to join groups are answered.
            await conn.execute(update(t.invites).where(t.invites.c.created_by == user_id).values(revoked=True))
            jr = t.join_requests
            await conn.execute(
                update(jr).where(jr.c.user_id == user_id, jr.c.status == "pending").values(status="declined")
            )
            # Issue 15: their blocks (both ways), remarks (theirs, and others' on them: a name for a person who
            # is gone), chat preferences and last seen go with the account.
            b, rm = t.blocks, t.contact_remarks
            await conn.execute(delete(b).where(or_(b.c.user_id == user_id, b.c.blocked_id == user_id)))
            await conn.execute(delete(rm).where(or_(rm.c.user_id == user_id, rm.c.target_id == user_id)))
            await conn.execute(delete(t.chat_prefs).where(t.chat_prefs.c.user_id == user_id))
            await conn.execute(delete(t.user_social).where(t.user_social.c.user_id == user_id))
            sids = list(
                (
                    await conn.execute(select(s.c.sid).where(s.c.user_id == user_id, s.c.revoked.is_(False)))
                ).scalars()
            )
            if sids:
                await conn.execute(update(s).where(s.c.sid.in_(sids)).values(revoked=True))
        return sids

    @unavailable
    async def delete_private_uploads(self, owner: int) -> list[str]:
        u, r, g = t.uploads, t.upload_refs, t.groups
        # Never in a message, and not a group's avatar (which its members see).
        never_sent = and_(
            ~exists(select(literal(1)).where(r.c.upload_id == u.c.id)),
            ~exists(select(literal(1)).where(g.c.avatar == u.c.id)),
        )
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    select(u.c.id, u.c.blob, u.c.thumb).where(u.c.owner_id == owner, never_sent)
                )
            ).all()
            if rows:
                await conn.execute(delete(u).where(u.c.id.in_([row.id for row in rows]), never_sent))
        keys = {row.blob for row in rows} | {row.thumb for row in rows if row.thumb}
        return sorted(keys)
