"""SQL implementation of ``MediaStorage``; mixed into ``SqlStorage``, whose transaction helpers it uses.

A message names its upload in its JSON body (``"upload":"<id>"``); ``upload_refs`` records who sent it, so
"is this upload in a message I can see" is a join through the sender's messages (indexed by sender) and the
reader's conversation memberships, without a scan of everyone's history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, exists, func, insert, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import UploadRecord
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import json_decode, json_encode, unavailable

#: The first key of the PostgreSQL advisory lock that serializes one owner's quota checks ("qu").
_QUOTA_LOCK = 0x7175


def upload_of(row: Row[Any]) -> UploadRecord:
    return UploadRecord(
        id=row.id,
        owner=row.owner_id,
        kind=row.kind,
        blob=row.blob,
        thumb=row.thumb,
        size=row.size,
        mime=row.mime,
        name=row.name,
        meta=json_decode(row.meta),
        created_at=row.created_at,
    )


def body_pattern(upload_id: str) -> str:
    """LIKE pattern for a message body naming the upload (ids are hex: nothing to escape)."""
    assert upload_id.isalnum()
    return f'%"upload":"{upload_id}"%'


class SqlMedia(SqlHost):
    @unavailable
    async def touch_blob(self, key: str, size: int, now: int) -> None:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(t.blobs).values(key=key, size=size, touched_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["key"], set_={"touched_at": now})
        async with self._tx() as conn:
            await conn.execute(stmt)

    async def _lock_owner(self, conn: AsyncConnection, owner: int) -> None:
        """Serialize quota checks per owner: on SQLite the single writer (BEGIN IMMEDIATE) already does; on
        PostgreSQL two READ COMMITTED transactions would each miss the other's uncommitted reservation."""
        if self.dialect == "postgresql":
            await conn.execute(select(func.pg_advisory_xact_lock(_QUOTA_LOCK, owner)))

    async def _held(self, conn: AsyncConnection, owner: int, now: int, besides: str | None) -> int:
        """Bytes the owner's uploads and unexpired reservations (other than ``besides``) hold."""
        u, r = t.uploads, t.upload_reservations
        stored = await conn.scalar(select(func.coalesce(func.sum(u.c.size), 0)).where(u.c.owner_id == owner))
        reserved_where = [r.c.owner_id == owner, r.c.expires_at > now]
        if besides is not None:
            reserved_where.append(r.c.id != besides)
        reserved = await conn.scalar(select(func.coalesce(func.sum(r.c.bytes), 0)).where(*reserved_where))
        return int(stored or 0) + int(reserved or 0)

    @unavailable
    async def reserve_quota(
        self, reservation: str, owner: int, size: int, quota: int, now: int, expires_at: int
    ) -> bool:
        r = t.upload_reservations
        async with self._tx() as conn:
            await self._lock_owner(conn, owner)
            await conn.execute(delete(r).where(r.c.owner_id == owner, r.c.expires_at <= now))
            if await self._held(conn, owner, now, reservation) + size > quota:
                return False
            dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
            stmt = dialect_insert(r).values(id=reservation, owner_id=owner, bytes=size, expires_at=expires_at)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["id"], set_={"bytes": size, "expires_at": expires_at}
                )
            )
        return True

    @unavailable
    async def release_quota(self, reservation: str) -> None:
        async with self._tx() as conn:
            await conn.execute(delete(t.upload_reservations).where(t.upload_reservations.c.id == reservation))

    @unavailable
    async def create_upload(
        self, record: UploadRecord, reservation: str | None = None, quota: int | None = None
    ) -> bool:
        async with self._tx() as conn:
            if quota is not None:
                await self._lock_owner(conn, record.owner)
                if await self._held(conn, record.owner, record.created_at, reservation) + record.size > quota:
                    return False
            if reservation is not None:
                await conn.execute(
                    delete(t.upload_reservations).where(t.upload_reservations.c.id == reservation)
                )
            await conn.execute(
                insert(t.uploads).values(
                    id=record.id,
                    owner_id=record.owner,
                    kind=record.kind,
                    blob=record.blob,
                    thumb=record.thumb,
                    size=record.size,
                    mime=record.mime,
                    name=record.name,
                    meta=json_encode(record.meta).decode(),
                    created_at=record.created_at,
                )
            )
        return True

    @unavailable
    async def upload(self, upload_id: str) -> UploadRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.uploads).where(t.uploads.c.id == upload_id))).first()
        return None if row is None else upload_of(row)

    @unavailable
    async def upload_usage(self, owner: int) -> int:
        async with self.engine.connect() as conn:
            used = await conn.scalar(
                select(func.coalesce(func.sum(t.uploads.c.size), 0)).where(t.uploads.c.owner_id == owner)
            )
        return int(used or 0)

    @unavailable
    async def add_upload_ref(self, upload_id: str, sender: int, now: int) -> None:
        async with self._tx() as conn:
            await conn.execute(
                self._insert_ignore(t.upload_refs).values(
                    upload_id=upload_id, sender=sender, confirmed=False, created_at=now
                )
            )

    @unavailable
    async def upload_in_visible_message(self, upload_id: str, user_id: int, types: tuple[str, ...]) -> bool:
        r, m, cm = t.upload_refs, t.messages, t.conv_members
        query = (
            select(literal(1))
            .select_from(
                r.join(m, m.c.sender == r.c.sender).join(
                    cm, and_(cm.c.conv == m.c.conv, cm.c.user_id == user_id)
                )
            )
            .where(
                r.c.upload_id == upload_id,
                m.c.type.in_(types),
                m.c.recalled.is_(False),
                m.c.seq > cm.c.min_seq,
                m.c.body.like(body_pattern(upload_id)),
            )
            .limit(1)
        )
        async with self.engine.connect() as conn:
            return (await conn.execute(query)).first() is not None

    @unavailable
    async def upload_is_avatar(self, upload_id: str) -> bool:
        u, users, groups, gm = t.uploads, t.users, t.groups, t.group_members
        own = (
            select(literal(1))
            .select_from(u.join(users, and_(users.c.avatar == u.c.id, users.c.id == u.c.owner_id)))
            .where(u.c.id == upload_id)
        )
        group = (
            select(literal(1))
            .select_from(
                u.join(groups, and_(groups.c.avatar == u.c.id, groups.c.avatar_by == u.c.owner_id)).join(
                    gm, and_(gm.c.group_id == groups.c.id, gm.c.user_id == u.c.owner_id)
                )
            )
            .where(u.c.id == upload_id)
        )
        async with self.engine.connect() as conn:
            return bool(await conn.scalar(select(exists(own) | exists(group))))

    @unavailable
    async def settle_upload_refs(self, cutoff: int, types: tuple[str, ...], limit: int) -> tuple[int, int]:
        r, m = t.upload_refs, t.messages
        confirmed = deleted = 0
        async with self._tx() as conn:
            rows = (
                await conn.execute(
                    select(r.c.upload_id, r.c.sender)
                    .where(r.c.confirmed.is_(False), r.c.created_at < cutoff)
                    .limit(limit)
                )
            ).all()
            for row in rows:
                found = await conn.scalar(
                    select(
                        exists(
                            select(literal(1)).where(
                                m.c.sender == row.sender,
                                m.c.type.in_(types),
                                m.c.recalled.is_(False),
                                m.c.body.like(body_pattern(row.upload_id)),
                            )
                        )
                    )
                )
                where = and_(r.c.upload_id == row.upload_id, r.c.sender == row.sender)
                if found:
                    await conn.execute(update(r).where(where).values(confirmed=True))
                    confirmed += 1
                else:
                    await conn.execute(delete(r).where(where))
                    deleted += 1
        return confirmed, deleted

    @staticmethod
    def _unused_upload() -> Any:
        u, g, gm = t.uploads, t.groups, t.group_members
        # The same notion of avatar as upload_is_avatar: the owner's own, or one the owner set on a group
        # they are in.
        group_avatar = (
            select(literal(1))
            .select_from(g.join(gm, and_(gm.c.group_id == g.c.id, gm.c.user_id == u.c.owner_id)))
            .where(g.c.avatar == u.c.id, g.c.avatar_by == u.c.owner_id)
        )
        return and_(
            ~exists(select(literal(1)).where(t.upload_refs.c.upload_id == u.c.id)),
            ~exists(select(literal(1)).where(t.users.c.avatar == u.c.id, t.users.c.id == u.c.owner_id)),
            ~exists(group_avatar),
        )

    @unavailable
    async def delete_unused_uploads(self, cutoff: int, limit: int) -> int:
        u = t.uploads
        async with self._tx() as conn:
            ids = (
                await conn.scalars(
                    select(u.c.id).where(u.c.created_at < cutoff, self._unused_upload()).limit(limit)
                )
            ).all()
            if not ids:
                return 0
            result = await conn.execute(
                delete(u).where(u.c.id.in_(ids), u.c.created_at < cutoff, self._unused_upload())
            )
        return int(result.rowcount or 0)

    @staticmethod
    def _unnamed_blob() -> Any:
        b, u = t.blobs, t.uploads
        return and_(
            ~exists(select(literal(1)).where(u.c.blob == b.c.key)),
            ~exists(select(literal(1)).where(u.c.thumb == b.c.key)),
        )

    @unavailable
    async def unreferenced_blobs(self, cutoff: int, limit: int) -> list[str]:
        b = t.blobs
        async with self.engine.connect() as conn:
            keys = await conn.scalars(
                select(b.c.key).where(b.c.touched_at < cutoff, self._unnamed_blob()).limit(limit)
            )
            return list(keys)

    @unavailable
    async def delete_blob_row(self, key: str, cutoff: int) -> bool:
        b = t.blobs
        async with self._tx() as conn:
            result = await conn.execute(
                delete(b).where(b.c.key == key, b.c.touched_at < cutoff, self._unnamed_blob())
            )
        return bool(result.rowcount)
