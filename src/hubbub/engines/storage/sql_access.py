"""SQL implementation of ``AccessStorage`` (engines/storage/base_access.py); mixed into ``SqlStorage``."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Group, User
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base_access import (
    AuditEntry,
    AuditQuery,
    GroupLink,
    Invite,
    JoinRequest,
    Report,
)
from hubbub.engines.storage.sql_admin import SERVER_ACCOUNT_PREFIX
from hubbub.engines.storage.sql_groups import group_of
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import json_decode, json_encode, like_prefix, unavailable

#: The username a closed account is renamed to: a server-account name (``~``), which nobody can register,
#: log in as, or be sent a notice as (sql_admin.py).
DELETED_PREFIX = "~deleted-"


def real_account() -> ColumnElement[bool]:
    """Accounts people made: not the server's own (``~`` names), but closed ones count (``~deleted-``), so
    deleting every account never makes a server "fresh" again (first-user-is-admin, open sign-up)."""
    name = t.users.c.username
    return or_(
        ~name.startswith(SERVER_ACCOUNT_PREFIX, autoescape=True),
        name.startswith(DELETED_PREFIX, autoescape=True),
    )


def invite_of(row: Row[Any] | Any) -> Invite:
    return Invite(
        code=row.code,
        created_by=row.created_by,
        max_uses=row.max_uses,
        uses=row.uses,
        expires_at=row.expires_at,
        revoked=bool(row.revoked),
        note=row.note,
        created_at=row.created_at,
    )


def link_of(row: Row[Any] | Any) -> GroupLink:
    return GroupLink(
        code=row.code,
        group_id=row.group_id,
        created_by=row.created_by,
        max_uses=row.max_uses,
        uses=row.uses,
        expires_at=row.expires_at,
        revoked=bool(row.revoked),
        created_at=row.created_at,
    )


def report_of(row: Row[Any] | Any) -> Report:
    return Report(
        id=row.id,
        reporter=row.reporter,
        kind=row.kind,
        target=row.target,
        reason=row.reason,
        snapshot=json_decode(row.snapshot),
        status=row.status,
        outcome=row.outcome,
        handled_by=row.handled_by,
        handled_at=row.handled_at,
        note=row.note,
        created_at=row.created_at,
    )


def invite_refusal(invite: Invite | None, now: int) -> str | None:
    """Why ``invite`` cannot admit anyone at ``now`` (unknown, revoked, expired, used_up), or None."""
    if invite is None:
        return "unknown"
    if invite.revoked:
        return "revoked"
    if invite.expires_at and invite.expires_at <= now:
        return "expired"
    if invite.uses >= invite.max_uses:
        return "used_up"
    return None


def link_refusal(link: GroupLink | None, now: int) -> str | None:
    """Why ``link`` cannot be used at ``now`` (unknown, revoked, expired, used_up), or None."""
    if link is None:
        return "unknown"
    if link.revoked:
        return "revoked"
    if link.expires_at and link.expires_at <= now:
        return "expired"
    if link.max_uses and link.uses >= link.max_uses:
        return "used_up"
    return None


class SqlAccess(SqlHost):
    # -- settings ---------------------------------------------------------------------------------
    @unavailable
    async def settings_values(self, keys: tuple[str, ...]) -> dict[str, str]:
        s = t.settings
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(s.c.key, s.c.value).where(s.c.key.in_(keys)))
            return {row.key: row.value for row in rows}

    @unavailable
    async def put_settings(self, values: dict[str, str]) -> None:
        s = t.settings
        async with self._tx() as conn:
            for key, value in values.items():
                changed = await conn.execute(update(s).where(s.c.key == key).values(value=value))
                if changed.rowcount == 0:
                    await conn.execute(insert(s).values(key=key, value=value))

    # -- registration -----------------------------------------------------------------------------
    @unavailable
    async def has_real_users(self) -> bool:
        async with self.engine.connect() as conn:
            return (
                await conn.execute(select(t.users.c.id).where(real_account()).limit(1))
            ).first() is not None

    @unavailable
    async def create_invite(self, invite: Invite) -> Invite:
        async with self._tx() as conn:
            await conn.execute(insert(t.invites).values(**_fields(invite)))
        return invite

    @unavailable
    async def invite(self, code: str) -> Invite | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.invites).where(t.invites.c.code == code))).first()
        return None if row is None else invite_of(row)

    @unavailable
    async def invites(self, created_by: int | None, after: str, limit: int) -> list[Invite]:
        i = t.invites
        stmt = select(i)
        if created_by is not None:
            stmt = stmt.where(i.c.created_by == created_by)
        if after:
            anchor = select(i.c.created_at).where(i.c.code == after).scalar_subquery()
            stmt = stmt.where(or_(i.c.created_at < anchor, and_(i.c.created_at == anchor, i.c.code < after)))
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt.order_by(i.c.created_at.desc(), i.c.code.desc()).limit(limit))
            return [invite_of(row) for row in rows]

    @unavailable
    async def revoke_invite(self, code: str) -> Invite | None:
        async with self._tx() as conn:
            await conn.execute(update(t.invites).where(t.invites.c.code == code).values(revoked=True))
            row = (await conn.execute(select(t.invites).where(t.invites.c.code == code))).first()
        return None if row is None else invite_of(row)

    @unavailable
    async def create_user_with_invite(
        self, username: str, nickname: str, password_hash: str, now: int, code: str
    ) -> User:
        i = t.invites
        live = (
            i.c.code == code,
            i.c.revoked.is_(False),
            i.c.uses < i.c.max_uses,
            or_(i.c.expires_at == 0, i.c.expires_at > now),
        )
        try:
            async with self._tx() as conn:
                taken = await conn.execute(update(i).where(*live).values(uses=i.c.uses + 1))
                if taken.rowcount != 1:
                    row = (await conn.execute(select(i).where(i.c.code == code))).first()
                    reason = invite_refusal(None if row is None else invite_of(row), now) or "used_up"
                    raise HubbubError(
                        Code.INVITE_INVALID, f"this invite cannot be used ({reason})", reason=reason
                    )
                user_id = await self._insert_user(conn, username, nickname, password_hash, now)
        except IntegrityError as exc:
            raise HubbubError(Code.USERNAME_TAKEN, f"username {username!r} is taken") from exc
        return User(id=user_id, username=username, nickname=nickname)

    # -- links and requests -----------------------------------------------------------------------
    @unavailable
    async def create_link(self, link: GroupLink) -> GroupLink:
        async with self._tx() as conn:
            await conn.execute(insert(t.group_links).values(**_fields(link)))
        return link

    @unavailable
    async def link(self, code: str) -> GroupLink | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.group_links).where(t.group_links.c.code == code))).first()
        return None if row is None else link_of(row)

    @unavailable
    async def links(self, group_id: int) -> list[GroupLink]:
        gl = t.group_links
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(gl)
                .where(gl.c.group_id == group_id, gl.c.revoked.is_(False))
                .order_by(gl.c.created_at.desc(), gl.c.code)
                .limit(100)
            )
            return [link_of(row) for row in rows]

    @unavailable
    async def revoke_link(self, group_id: int, code: str) -> bool:
        gl = t.group_links
        async with self._tx() as conn:
            done = await conn.execute(
                update(gl).where(gl.c.code == code, gl.c.group_id == group_id).values(revoked=True)
            )
        return bool(done.rowcount)

    @unavailable
    async def take_link_use(self, code: str, now: int) -> bool:
        gl = t.group_links
        async with self._tx() as conn:
            done = await conn.execute(
                update(gl)
                .where(
                    gl.c.code == code,
                    gl.c.revoked.is_(False),
                    or_(gl.c.max_uses == 0, gl.c.uses < gl.c.max_uses),
                    or_(gl.c.expires_at == 0, gl.c.expires_at > now),
                )
                .values(uses=gl.c.uses + 1)
            )
        return done.rowcount == 1

    @unavailable
    async def give_back_link_use(self, code: str) -> None:
        gl = t.group_links
        async with self._tx() as conn:
            await conn.execute(update(gl).where(gl.c.code == code, gl.c.uses > 0).values(uses=gl.c.uses - 1))

    def _request_query(self) -> Any:
        jr = t.join_requests
        u = t.users
        return select(jr, u.c.username, u.c.nickname, u.c.signature, u.c.avatar).join(
            u, u.c.id == jr.c.user_id
        )

    @staticmethod
    def _request_of(row: Any) -> JoinRequest:
        return JoinRequest(
            id=row.id,
            group_id=row.group_id,
            user=User(
                id=row.user_id,
                username=row.username,
                nickname=row.nickname,
                signature=row.signature,
                avatar=row.avatar,
                system=row.username.startswith("~"),
            ),
            link=row.link,
            status=row.status,
            created_at=row.created_at,
            decided_by=row.decided_by,
            decided_at=row.decided_at,
        )

    @unavailable
    async def create_join_request(self, group_id: int, user_id: int, link: str, now: int) -> JoinRequest:
        jr = t.join_requests
        pending = (jr.c.group_id == group_id, jr.c.user_id == user_id, jr.c.status == "pending")
        async with self._tx() as conn:
            found = (await conn.execute(select(jr.c.id).where(*pending))).scalar_one_or_none()
            if found is None:
                found = (
                    await conn.execute(
                        insert(jr)
                        .values(
                            group_id=group_id, user_id=user_id, link=link, status="pending", created_at=now
                        )
                        .returning(jr.c.id)
                    )
                ).scalar_one()
        request = await self.join_request(int(found))
        assert request is not None
        return request

    @unavailable
    async def join_request(self, request_id: int) -> JoinRequest | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(self._request_query().where(t.join_requests.c.id == request_id))
            ).first()
        return None if row is None else self._request_of(row)

    @unavailable
    async def pending_join_request(self, group_id: int, user_id: int) -> JoinRequest | None:
        jr = t.join_requests
        query = self._request_query().where(
            jr.c.group_id == group_id, jr.c.user_id == user_id, jr.c.status == "pending"
        )
        async with self.engine.connect() as conn:
            row = (await conn.execute(query.limit(1))).first()
        return None if row is None else self._request_of(row)

    @unavailable
    async def join_requests(self, group_id: int, status: str, limit: int) -> list[JoinRequest]:
        jr = t.join_requests
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                self._request_query()
                .where(jr.c.group_id == group_id, jr.c.status == status)
                .order_by(jr.c.id)
                .limit(limit)
            )
            return [self._request_of(row) for row in rows]

    @unavailable
    async def decide_join_request(self, request_id: int, status: str, by: int, now: int) -> bool:
        jr = t.join_requests
        async with self._tx() as conn:
            done = await conn.execute(
                update(jr)
                .where(jr.c.id == request_id, jr.c.status == "pending")
                .values(status=status, decided_by=by, decided_at=now)
            )
        return done.rowcount == 1

    @unavailable
    async def find_groups(self, query: str, after: int, limit: int, public_only: bool) -> list[Group]:
        g = t.groups
        stmt = select(g).where(g.c.id > after)
        if public_only:
            stmt = stmt.where(g.c.public.is_(True), g.c.dismissed.is_(False), g.c.frozen.is_(False))
        if query:
            word = like_prefix(query)
            stmt = stmt.where(
                or_(
                    func.lower(g.c.name).like(word, escape="\\"),
                    func.lower(g.c.name).like("% " + word, escape="\\"),
                )
            )
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt.order_by(g.c.id).limit(limit))
            return [group_of(row) for row in rows]

    # -- moderation -------------------------------------------------------------------------------
    @unavailable
    async def ban_until(self, user_id: int, until: int, reason: str) -> bool:
        u = t.users
        async with self._tx() as conn:
            done = await conn.execute(
                update(u).where(u.c.id == user_id).values(banned=True, banned_until=until, ban_reason=reason)
            )
            if done.rowcount != 1:
                return False
            # After the row lock above, as in SqlAdmin.ban_user: a session a racing login created is seen.
            await self._revoke_sessions(conn, user_id, None)
        return True

    @unavailable
    async def lift_expired_ban(self, user_id: int, now: int) -> bool:
        u = t.users
        async with self._tx() as conn:
            done = await conn.execute(
                update(u)
                .where(u.c.id == user_id, u.c.banned.is_(True), u.c.banned_until > 0, u.c.banned_until <= now)
                .values(banned=False, banned_until=0, ban_reason="")
            )
        return done.rowcount == 1

    @unavailable
    async def create_report(self, report: Report) -> Report:
        values = _fields(report)
        values.pop("id")
        values["snapshot"] = json_encode(report.snapshot).decode()
        async with self._tx() as conn:
            report_id = (
                await conn.execute(insert(t.reports).values(**values).returning(t.reports.c.id))
            ).scalar_one()
        found = await self.report(int(report_id))
        assert found is not None
        return found

    @unavailable
    async def report(self, report_id: int) -> Report | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.reports).where(t.reports.c.id == report_id))).first()
        return None if row is None else report_of(row)

    @unavailable
    async def reports(self, status: str, reporter: int | None, before: int, limit: int) -> list[Report]:
        r = t.reports
        stmt = select(r)
        if status:
            stmt = stmt.where(r.c.status == status)
        if reporter is not None:
            stmt = stmt.where(r.c.reporter == reporter)
        if before:
            stmt = stmt.where(r.c.id < before)
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt.order_by(r.c.id.desc()).limit(limit))
            return [report_of(row) for row in rows]

    @unavailable
    async def resolve_report(
        self, report_id: int, status: str, outcome: str, by: int, note: str, now: int
    ) -> bool:
        r = t.reports
        async with self._tx() as conn:
            done = await conn.execute(
                update(r)
                .where(r.c.id == report_id, r.c.status == "open")
                .values(status=status, outcome=outcome, handled_by=by, handled_at=now, note=note)
            )
        return done.rowcount == 1

    @unavailable
    async def append_audit(
        self, ts: int, actor: int, action: str, target: str, reason: str, address: str, detail: dict[str, Any]
    ) -> int:
        a = t.audit_log
        async with self._tx() as conn:
            entry_id = (
                await conn.execute(
                    insert(a)
                    .values(
                        ts=ts,
                        actor=actor,
                        action=action,
                        target=target[:64],
                        reason=reason[:1024],
                        address=address[:64],
                        detail=json_encode(detail).decode(),
                    )
                    .returning(a.c.id)
                )
            ).scalar_one()
        return int(entry_id)

    @unavailable
    async def audit(self, query: AuditQuery, before: int, after: int | None, limit: int) -> list[AuditEntry]:
        a = t.audit_log
        where: list[ColumnElement[bool]] = []
        if query.actor is not None:
            where.append(a.c.actor == query.actor)
        if query.action:
            where.append(a.c.action == query.action)
        if query.target:
            where.append(a.c.target == query.target)
        if query.since:
            where.append(a.c.ts >= query.since)
        if query.until:
            where.append(a.c.ts < query.until)
        if after is not None:
            stmt = select(a).where(*where, a.c.id > after).order_by(a.c.id)
        else:
            if before:
                where.append(a.c.id < before)
            stmt = select(a).where(*where).order_by(a.c.id.desc())
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt.limit(limit))
            return [
                AuditEntry(
                    id=row.id,
                    ts=row.ts,
                    actor=row.actor,
                    action=row.action,
                    target=row.target,
                    reason=row.reason,
                    address=row.address,
                    detail=json_decode(row.detail),
                )
                for row in rows
            ]

    @unavailable
    async def admin_counts(self) -> dict[str, int]:
        u, g, up = t.users, t.groups, t.uploads
        real = ~u.c.username.startswith(SERVER_ACCOUNT_PREFIX, autoescape=True)
        async with self.engine.connect() as conn:

            async def one(stmt: Any) -> int:
                return int((await conn.execute(stmt)).scalar_one() or 0)

            return {
                "users": await one(select(func.count()).select_from(u).where(real)),
                "banned_users": await one(
                    select(func.count()).select_from(u).where(real, u.c.banned.is_(True))
                ),
                "groups": await one(select(func.count()).select_from(g).where(g.c.dismissed.is_(False))),
                "uploads": await one(select(func.count()).select_from(up)),
                "upload_bytes": await one(select(func.coalesce(func.sum(up.c.size), 0))),
                "open_reports": await one(
                    select(func.count()).select_from(t.reports).where(t.reports.c.status == "open")
                ),
            }


def _fields(struct: Any) -> dict[str, Any]:
    return msgspec.structs.asdict(struct)
