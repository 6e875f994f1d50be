"""SQL implementation of ``GroupStorage``; mixed into ``SqlStorage``, whose transaction helpers it uses.

A group's conversation row (``g:<id>``) is locked for every change, so membership changes and group sends
are serialized per group: each change and its system message get one seq, in order, on every node.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.core.convs import group_conv
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Group, GroupMember
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base import (
    GroupChange,
    GroupCheck,
    GroupFacts,
    GroupUpdate,
    MemberFacts,
    NewMessage,
    Stored,
)
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import USER_COLS, like_prefix, unavailable, user_of

_GROUP_FIELDS = frozenset(
    {"name", "avatar", "notice", "invite_policy", "muted_all", "dismissed", "owner_id", "hot", "frozen"}
)
#: Join settings (services/joins.py).
_GROUP_FIELDS = _GROUP_FIELDS | {"public", "join_approval"}
#: Who set the avatar (only an avatar its uploader set is public, docs/media.md): stored, never shown.
_GROUP_FIELDS = _GROUP_FIELDS | {"avatar_by"}
#: Who may pin messages (services/actions.py).
_GROUP_FIELDS = _GROUP_FIELDS | {"pin_policy"}


def group_of(row: Row[Any] | Any) -> Group:
    return Group(
        id=row.id,
        name=row.name,
        avatar=row.avatar,
        notice=row.notice,
        owner=row.owner_id,
        invite_policy=row.invite_policy,
        muted_all=bool(row.muted_all),
        dismissed=bool(row.dismissed),
        member_count=row.member_count,
        created_at=row.created_at,
        conv=group_conv(row.id),
        hot=bool(row.hot),
        frozen=bool(row.frozen),
        public=bool(row.public),
        join_approval=bool(row.join_approval),
        pin_policy=row.pin_policy,
    )


class SqlGroups(SqlHost):
    # -- reads used inside send transactions ------------------------------------------------------
    async def _group_facts(
        self, conn: AsyncConnection, senders: dict[str, set[int]]
    ) -> dict[str, GroupFacts]:
        """Groups and members for a batch's group messages. A hot group's full member list is not read:
        only the senders' rows, since its members are signalled, not pushed to (bounded database reads).
        Which groups are hot is the services' rule (``is_hot``), applied to the group row read here."""
        ids = [int(c[2:]) for c in senders]
        groups = {
            row.id: group_of(row)
            for row in await conn.execute(select(t.groups).where(t.groups.c.id.in_(ids)))
        }
        hot = {gid for gid, g in groups.items() if self.is_hot(g)}
        members: dict[int, dict[int, MemberFacts]] = {gid: {} for gid in groups}
        gm = t.group_members
        cols = (gm.c.group_id, gm.c.user_id, gm.c.role, gm.c.muted_until, gm.c.dnd)
        queries = []
        if normal := [gid for gid in groups if gid not in hot]:
            queries.append(select(*cols).where(gm.c.group_id.in_(normal)))
        for gid in hot:
            queries.append(
                select(*cols).where(gm.c.group_id == gid, gm.c.user_id.in_(senders[group_conv(gid)]))
            )
        for query in queries:
            for row in await conn.execute(query):
                members[row.group_id][row.user_id] = MemberFacts(
                    role=row.role, muted_until=row.muted_until, dnd=bool(row.dnd)
                )
        return {
            group_conv(gid): GroupFacts(group=g, members=members[gid], hot=gid in hot)
            for gid, g in groups.items()
        }

    async def _member_ids(self, conn: AsyncConnection, group_id: int) -> tuple[int, ...]:
        gm = t.group_members
        rows = await conn.execute(
            select(gm.c.user_id).where(gm.c.group_id == group_id).order_by(gm.c.user_id)
        )
        return tuple(rows.scalars())

    # -- GroupStorage -----------------------------------------------------------------------------
    @unavailable
    async def create_group(
        self, owner: int, fields: dict[str, Any], members: list[int], notice: NewMessage
    ) -> GroupUpdate:
        now = notice.ts
        roles = dict.fromkeys(members, "member")
        roles[owner] = "owner"
        async with self._tx() as conn:
            group_id = (
                await conn.execute(
                    insert(t.groups)
                    .values(
                        name=fields["name"],
                        avatar=fields.get("avatar"),
                        avatar_by=fields.get("avatar_by"),
                        notice=fields.get("notice", ""),
                        owner_id=owner,
                        invite_policy=fields.get("invite_policy", "members"),
                        muted_all=False,
                        dismissed=False,
                        member_count=len(roles),
                        created_at=now,
                        hot=False,
                    )
                    .returning(t.groups.c.id)
                )
            ).scalar_one()
            conv = group_conv(group_id)
            await conn.execute(insert(t.conversations).values(conv=conv, max_seq=0, updated_at=now))
            await self._add_members(conn, group_id, roles, 0, now)
            notice = msgspec.structs.replace(notice, conv=conv)
            stored = await self._append(conn, [notice])
            after = await self._member_ids(conn, group_id)
            group = group_of((await conn.execute(select(t.groups).where(t.groups.c.id == group_id))).one())
        message = stored[(notice.sender, notice.cmid)]
        return GroupUpdate(
            group=group,
            stored=Stored(message=message, duplicate=False, recipients=after),
            before=(),
            after=after,
        )

    async def _add_members(
        self, conn: AsyncConnection, group_id: int, roles: dict[int, str], from_seq: int, now: int
    ) -> None:
        if not roles:
            return
        await conn.execute(
            insert(t.group_members),
            [
                {
                    "group_id": group_id,
                    "user_id": uid,
                    "role": role,
                    "nickname": "",
                    "dnd": False,
                    "muted_until": 0,
                    "joined_at": now,
                }
                for uid, role in roles.items()
            ],
        )
        conv = group_conv(group_id)
        await conn.execute(
            delete(t.conv_members).where(
                t.conv_members.c.conv == conv, t.conv_members.c.user_id.in_(list(roles))
            )
        )
        await conn.execute(
            insert(t.conv_members),
            [
                {"user_id": uid, "conv": conv, "read_seq": from_seq, "min_seq": from_seq, "mention_seq": 0}
                for uid in roles
            ],
        )

    @unavailable
    async def change_group(
        self, group_id: int, change: GroupChange, notice: NewMessage, check: GroupCheck | None = None
    ) -> GroupUpdate:
        conv = group_conv(group_id)
        gm = t.group_members
        async with self._tx() as conn:
            await self._lock_conversations(conn, [conv])
            max_seq = (
                await conn.execute(select(t.conversations.c.max_seq).where(t.conversations.c.conv == conv))
            ).scalar_one_or_none()
            if max_seq is None:
                raise HubbubError(Code.NOT_FOUND, "group not found")
            if check is not None:
                # Read after the lock: a freeze or dismissal (itself a change_group) committed before it is
                # seen here; one after it waits for this transaction.
                row = (await conn.execute(select(t.groups).where(t.groups.c.id == group_id))).one()
                refused = check(group_of(row))
                if refused is not None:
                    raise refused
            before = await self._member_ids(conn, group_id)
            present = set(before)
            adding = {uid: role for uid, role in change.add.items() if uid not in present}
            removing = [uid for uid in change.remove if uid in present]
            if change.max_members and len(present) + len(adding) - len(removing) > change.max_members:
                raise HubbubError(Code.CONFLICT, f"a group has at most {change.max_members} members")
            if removing:
                await conn.execute(delete(gm).where(gm.c.group_id == group_id, gm.c.user_id.in_(removing)))
                await conn.execute(
                    delete(t.conv_members).where(
                        t.conv_members.c.conv == conv, t.conv_members.c.user_id.in_(removing)
                    )
                )
            await self._add_members(conn, group_id, adding, max_seq, notice.ts)
            for uid, role in change.roles.items():
                await conn.execute(
                    update(gm).where(gm.c.group_id == group_id, gm.c.user_id == uid).values(role=role)
                )
            for uid, until in change.mutes.items():
                await conn.execute(
                    update(gm).where(gm.c.group_id == group_id, gm.c.user_id == uid).values(muted_until=until)
                )
            fields = {k: v for k, v in change.fields.items() if k in _GROUP_FIELDS}
            count = len(present) + len(adding) - len(removing)
            await conn.execute(
                update(t.groups).where(t.groups.c.id == group_id).values(member_count=count, **fields)
            )
            stored = await self._append(conn, [notice])
            after = await self._member_ids(conn, group_id)
            group = group_of((await conn.execute(select(t.groups).where(t.groups.c.id == group_id))).one())
        message = stored[(notice.sender, notice.cmid)]
        recipients = tuple(sorted(set(before) | set(after)))
        return GroupUpdate(
            group=group,
            stored=Stored(message=message, duplicate=False, recipients=recipients),
            before=before,
            after=after,
        )

    @unavailable
    async def member_floors(self, conv: str) -> dict[int, int]:
        cm, c = t.conv_members, t.conversations
        async with self.engine.connect() as conn:
            # Retention's purged floor counts as everyone's (engines/storage/lifecycle.py).
            purged = int(await conn.scalar(select(c.c.purged_seq).where(c.c.conv == conv)) or 0)
            rows = await conn.execute(select(cm.c.user_id, cm.c.min_seq).where(cm.c.conv == conv))
            return {uid: max(floor, purged) for uid, floor in rows}

    @unavailable
    async def group(self, group_id: int) -> Group | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.groups).where(t.groups.c.id == group_id))).first()
        return None if row is None else group_of(row)

    @unavailable
    async def groups_of(self, user_id: int) -> list[Group]:
        gm = t.group_members
        async with self.engine.connect() as conn:
            me = (await conn.execute(select(*USER_COLS).where(t.users.c.id == user_id))).first()
            rows = await conn.execute(
                select(
                    t.groups,
                    gm.c.role,
                    gm.c.nickname.label("group_nickname"),
                    gm.c.dnd,
                    gm.c.muted_until,
                    gm.c.joined_at,
                )
                .join(gm, gm.c.group_id == t.groups.c.id)
                .where(gm.c.user_id == user_id)
                .order_by(t.groups.c.id)
            )
            if me is None:
                return []
            user = user_of(me)
            return [
                msgspec.structs.replace(
                    group_of(row),
                    me=GroupMember(
                        user=user,
                        role=row.role,
                        nickname=row.group_nickname,
                        dnd=bool(row.dnd),
                        muted_until=row.muted_until,
                        joined_at=row.joined_at,
                    ),
                )
                for row in rows
            ]

    def _member_query(self) -> Any:
        gm = t.group_members
        return select(
            *USER_COLS,
            gm.c.role,
            gm.c.nickname.label("group_nickname"),
            gm.c.dnd,
            gm.c.muted_until,
            gm.c.joined_at,
        ).join(gm, gm.c.user_id == t.users.c.id)

    @staticmethod
    def _member_of(row: Any) -> GroupMember:
        return GroupMember(
            user=user_of(row),
            role=row.role,
            nickname=row.group_nickname,
            dnd=bool(row.dnd),
            muted_until=row.muted_until,
            joined_at=row.joined_at,
        )

    @unavailable
    async def group_member(self, group_id: int, user_id: int) -> GroupMember | None:
        gm = t.group_members
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    self._member_query().where(gm.c.group_id == group_id, gm.c.user_id == user_id)
                )
            ).first()
        return None if row is None else self._member_of(row)

    @unavailable
    async def group_members(
        self, group_id: int, after_user: int, limit: int, prefix: str = ""
    ) -> list[GroupMember]:
        gm = t.group_members
        query = self._member_query().where(gm.c.group_id == group_id, gm.c.user_id > after_user)
        if prefix:
            like = like_prefix(prefix)
            query = query.where(
                or_(
                    t.users.c.username_lower.like(like, escape="\\"),
                    func.lower(t.users.c.nickname).like(like, escape="\\"),
                    func.lower(gm.c.nickname).like(like, escape="\\"),
                )
            )
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(gm.c.user_id).limit(limit))
            return [self._member_of(row) for row in rows]

    @unavailable
    async def set_member_prefs(
        self, group_id: int, user_id: int, fields: dict[str, Any]
    ) -> GroupMember | None:
        gm = t.group_members
        async with self._tx() as conn:
            if fields:
                await conn.execute(
                    update(gm).where(gm.c.group_id == group_id, gm.c.user_id == user_id).values(**fields)
                )
        return await self.group_member(group_id, user_id)

    @unavailable
    async def readers(self, conv: str, seq: int, exclude: int, limit: int) -> tuple[int, int, list[int]]:
        cm = t.conv_members
        # min_seq < seq: only members who were there when it was sent (a later joiner's read seq starts at
        # their joining point, past ``seq``, though they never saw the message).
        others = (cm.c.conv == conv, cm.c.user_id != exclude, cm.c.min_seq < seq)
        async with self.engine.connect() as conn:
            total = (await conn.execute(select(func.count()).where(*others))).scalar_one()
            read = (
                await conn.execute(select(func.count()).where(*others, cm.c.read_seq >= seq))
            ).scalar_one()
            who = await conn.execute(
                select(cm.c.user_id).where(*others, cm.c.read_seq >= seq).order_by(cm.c.user_id).limit(limit)
            )
            return read, total, list(who.scalars())
