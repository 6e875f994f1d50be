"""SQLAlchemy Core implementation of :class:`Storage`, for SQLite and PostgreSQL alike.

One typed method per query, no ORM: the hot path (``store_messages``) is a handful of statements per batch,
whatever the batch size — one seq allocation for all its conversations, one insert for all its rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import and_, case, delete, event, exists, func, insert, or_, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from hubbub.core.errors import Code, HubbubError, not_found
from hubbub.core.models import Account, FriendRequest, Group, Message, User
from hubbub.engines.storage import schema as t
from hubbub.engines.storage import write_plan as plan
from hubbub.engines.storage.base import (
    Admit,
    ConvState,
    GroupFacts,
    NewMessage,
    RefreshToken,
    Rejected,
    Storage,
    Stored,
)
from hubbub.engines.storage.sql_access import SqlAccess, real_account
from hubbub.engines.storage.sql_actions import SqlActions
from hubbub.engines.storage.sql_admin import SqlAdmin
from hubbub.engines.storage.sql_groups import SqlGroups
from hubbub.engines.storage.sql_lifecycle import SqlLifecycle
from hubbub.engines.storage.sql_media import SqlMedia
from hubbub.engines.storage.sql_search import SqlSearch
from hubbub.engines.storage.sqlite_writer import SqliteBatchWriter
from hubbub.engines.storage.sqlutil import RETRYABLE_SQLSTATES as _RETRYABLE_SQLSTATES
from hubbub.engines.storage.sqlutil import (
    USER_COLS,
    json_encode,
    like_prefix,
    message_of,
    unavailable,
    user_of,
)
from hubbub.engines.storage.sqlutil import sqlstate as _sqlstate

#: Notices (group changes, recalls) appear in history but never count as unread; nor does a recalled
#: message (docs/protocol.md, "Unread rules").
NOT_UNREAD_TYPES = ("system", "recall", "edit", "reaction", "pin")


class SqlStorage(SqlGroups, SqlMedia, SqlAdmin, SqlLifecycle, SqlSearch, SqlAccess, SqlActions, Storage):
    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        is_hot: Callable[[Group], bool] | None = None,
        first_user_admin: bool = False,
    ) -> None:
        self.url = url
        #: The first account created (server accounts aside) becomes an admin (docs/operations.md).
        self.first_user_admin = first_user_admin
        #: The services' rule for push-pull groups (services/hot/policy.py), given the group as read in the
        #: storing transaction: a hot group's sends do not read its member list. Without it, none is hot.
        self.is_hot: Callable[[Group], bool] = is_hot or _never_hot
        kwargs: dict[str, Any] = {"echo": echo}
        if url.startswith("postgresql"):
            # Reads wait for a connection rather than fail; 20 keeps PostgreSQL busy without thrashing it.
            kwargs.update(pool_size=20, max_overflow=10, pool_timeout=10, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        self.dialect = self.engine.dialect.name
        # Writes go through ``writer``. On SQLite that is one connection whose transactions start with
        # BEGIN IMMEDIATE: SQLite allows one writer, and a deferred transaction that reads first and then
        # writes fails at once (SQLITE_BUSY) when another writer got in between.
        self.writer: AsyncEngine = self.engine
        self._queries = 0
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            self.writer = create_async_engine(url, echo=echo, pool_size=1, max_overflow=0)
            event.listen(self.writer.sync_engine, "connect", _sqlite_writer_connect)
            event.listen(self.writer.sync_engine, "begin", _sqlite_begin_immediate)

        for engine in {id(self.engine): self.engine, id(self.writer): self.writer}.values():
            event.listen(engine.sync_engine, "before_cursor_execute", self._count_query)

        # The embedded default's hot path (sqlite_writer.py); the contract tests cover it with the rest.
        self._batch_writer: SqliteBatchWriter | None = None
        if self.dialect == "sqlite" and self.engine.url.database not in (None, "", ":memory:"):
            self._batch_writer = SqliteBatchWriter(str(self.engine.url.database))

    def _count_query(self, *_args: Any) -> None:
        self._queries += 1

    @property
    def queries(self) -> int:
        """SQL statements executed, for metrics and benchmarks."""
        writer = self._batch_writer.queries if self._batch_writer is not None else 0
        return self._queries + writer

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        from hubbub.migrations.runner import upgrade

        async with self.writer.begin() as conn:
            await conn.run_sync(upgrade)

    async def schema_revision(self) -> str | None:
        from hubbub.migrations.runner import current

        async with self.engine.connect() as conn:
            return await conn.run_sync(current)

    async def migrate(
        self, pending: Callable[[list[tuple[str, str]]], None], step: Callable[[str, str], None]
    ) -> int:
        from hubbub.migrations import runner

        async with self.writer.begin() as conn:
            todo = await conn.run_sync(runner.pending)
            pending(todo)

            def apply(sync_conn: Any) -> None:
                for revision, doc in todo:
                    step(revision, doc)
                    runner.upgrade(sync_conn, revision)

            if todo:
                await conn.run_sync(apply)
        return len(todo)

    async def close(self) -> None:
        if self._batch_writer is not None:
            self._batch_writer.close()
        await self.engine.dispose()
        if self.writer is not self.engine:
            await self.writer.dispose()

    @unavailable
    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        async with self.writer.begin() as conn:
            yield conn

    def _insert_ignore(self, table: Any) -> Any:
        dialect_insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        return dialect_insert(table).on_conflict_do_nothing()

    # -- accounts -------------------------------------------------------------------------------
    def _first_user_clause(self) -> Any:
        """True for the first real account when ``first_user_admin`` is set, decided inside the insert."""
        if not self.first_user_admin:
            return False
        return ~exists(select(t.users.c.id).where(real_account()))

    @unavailable
    async def create_user(self, username: str, nickname: str, password_hash: str, now: int) -> User:
        try:
            async with self._tx() as conn:
                user_id = await self._insert_user(conn, username, nickname, password_hash, now)
        except IntegrityError as exc:
            raise HubbubError(Code.USERNAME_TAKEN, f"username {username!r} is taken") from exc
        return User(id=user_id, username=username, nickname=nickname)

    async def _insert_user(
        self, conn: AsyncConnection, username: str, nickname: str, password_hash: str, now: int
    ) -> int:
        """The new account's row (the first real account of a fresh server is its admin); its id."""
        result = await conn.execute(
            insert(t.users)
            .values(
                username=username,
                username_lower=username.lower(),
                nickname=nickname,
                signature="",
                password_hash=password_hash,
                banned=False,
                created_at=now,
                is_admin=self._first_user_clause(),
            )
            .returning(t.users.c.id)
        )
        return int(result.scalar_one())

    async def _account_where(self, clause: Any) -> Account | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(*USER_COLS, t.users.c.password_hash, t.users.c.banned, t.users.c.is_admin).where(
                        clause
                    )
                )
            ).first()
        if row is None:
            return None
        return Account(
            user=user_of(row),
            password_hash=row.password_hash,
            banned=bool(row.banned),
            is_admin=bool(row.is_admin),
        )

    @unavailable
    async def account_by_username(self, username: str) -> Account | None:
        return await self._account_where(t.users.c.username_lower == username.lower())

    @unavailable
    async def account(self, user_id: int) -> Account | None:
        return await self._account_where(t.users.c.id == user_id)

    @unavailable
    async def users(self, ids: list[int]) -> dict[int, User]:
        if not ids:
            return {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(*USER_COLS).where(t.users.c.id.in_(set(ids))))
            return {row.id: user_of(row) for row in rows}

    @unavailable
    async def update_profile(self, user_id: int, fields: dict[str, Any]) -> User | None:
        async with self._tx() as conn:
            if fields:
                await conn.execute(update(t.users).where(t.users.c.id == user_id).values(**fields))
            row = (await conn.execute(select(*USER_COLS).where(t.users.c.id == user_id))).first()
        return None if row is None else user_of(row)

    @unavailable
    async def set_password(self, user_id: int, password_hash: str, keep_sid: str | None) -> list[str]:
        async with self._tx() as conn:
            await conn.execute(
                update(t.users).where(t.users.c.id == user_id).values(password_hash=password_hash)
            )
            return await self._revoke_sessions(conn, user_id, keep_sid)

    @unavailable
    async def search_users(self, prefix: str, limit: int) -> list[User]:
        escaped = like_prefix(prefix)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*USER_COLS)
                .where(
                    or_(
                        t.users.c.username_lower.like(escaped, escape="\\"),
                        func.lower(t.users.c.nickname).like(escaped, escape="\\"),
                    )
                )
                .where(t.users.c.canary.is_(False))  # the delivery canary's accounts are no one to find
                .order_by(t.users.c.id)
                .limit(limit)
            )
            return [user_of(row) for row in rows]

    # -- sessions -------------------------------------------------------------------------------
    @unavailable
    async def create_session(
        self, sid: str, user_id: int, token_hash: str, expires_at: int, now: int
    ) -> bool:
        async with self._tx() as conn:
            # FOR SHARE on PostgreSQL: a ban (an UPDATE of this row) waits for this transaction or this
            # waits for the ban and then reads it. SQLite's writer serialises the two transactions anyway.
            banned = (
                await conn.execute(
                    select(t.users.c.banned).where(t.users.c.id == user_id).with_for_update(read=True)
                )
            ).scalar_one_or_none()
            if banned is None or banned:
                return False
            await conn.execute(
                insert(t.sessions).values(sid=sid, user_id=user_id, revoked=False, created_at=now)
            )
            await conn.execute(
                insert(t.refresh_tokens).values(
                    token_hash=token_hash, sid=sid, expires_at=expires_at, spent=False
                )
            )
        return True

    @unavailable
    async def refresh_token(self, token_hash: str) -> RefreshToken | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        t.refresh_tokens.c.sid,
                        t.refresh_tokens.c.expires_at,
                        t.refresh_tokens.c.spent,
                        t.sessions.c.user_id,
                        t.sessions.c.revoked,
                    )
                    .join(t.sessions, t.sessions.c.sid == t.refresh_tokens.c.sid)
                    .where(t.refresh_tokens.c.token_hash == token_hash)
                )
            ).first()
        if row is None:
            return None
        return RefreshToken(
            sid=row.sid,
            user_id=row.user_id,
            expires_at=row.expires_at,
            spent=bool(row.spent),
            session_revoked=bool(row.revoked),
        )

    @unavailable
    async def rotate_refresh_token(self, old_hash: str, new_hash: str, sid: str, expires_at: int) -> bool:
        async with self._tx() as conn:
            spent = await conn.execute(
                update(t.refresh_tokens)
                .where(t.refresh_tokens.c.token_hash == old_hash, t.refresh_tokens.c.spent.is_(False))
                .values(spent=True)
            )
            if spent.rowcount != 1:
                return False
            await conn.execute(
                insert(t.refresh_tokens).values(
                    token_hash=new_hash, sid=sid, expires_at=expires_at, spent=False
                )
            )
            return True

    @unavailable
    async def revoke_session(self, sid: str) -> None:
        async with self._tx() as conn:
            await conn.execute(update(t.sessions).where(t.sessions.c.sid == sid).values(revoked=True))

    @unavailable
    async def revoke_sessions(self, user_id: int, keep_sid: str | None) -> list[str]:
        async with self._tx() as conn:
            return await self._revoke_sessions(conn, user_id, keep_sid)

    @staticmethod
    async def _revoke_sessions(conn: AsyncConnection, user_id: int, keep_sid: str | None) -> list[str]:
        clause = and_(t.sessions.c.user_id == user_id, t.sessions.c.revoked.is_(False))
        if keep_sid is not None:
            clause = and_(clause, t.sessions.c.sid != keep_sid)
        sids = list((await conn.execute(select(t.sessions.c.sid).where(clause))).scalars())
        if sids:
            await conn.execute(update(t.sessions).where(t.sessions.c.sid.in_(sids)).values(revoked=True))
        return sids

    @unavailable
    async def session_active(self, sid: str) -> bool:
        async with self.engine.connect() as conn:
            revoked = (
                await conn.execute(select(t.sessions.c.revoked).where(t.sessions.c.sid == sid))
            ).scalar_one_or_none()
        return revoked is not None and not revoked

    # -- friends --------------------------------------------------------------------------------
    @unavailable
    async def are_friends(self, a: int, b: int) -> bool:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(t.friendships.c.since).where(
                        t.friendships.c.user_id == a, t.friendships.c.friend_id == b
                    )
                )
            ).first()
        return row is not None

    @unavailable
    async def friends(self, user_id: int) -> list[tuple[User, int]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(*USER_COLS, t.friendships.c.since)
                .join(t.friendships, t.friendships.c.friend_id == t.users.c.id)
                .where(t.friendships.c.user_id == user_id)
                .order_by(t.users.c.nickname, t.users.c.id)
            )
            return [(user_of(row), row.since) for row in rows]

    @unavailable
    async def friend_ids(self, user_id: int) -> list[int]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.friendships.c.friend_id).where(t.friendships.c.user_id == user_id)
            )
            return list(rows.scalars())

    @unavailable
    async def add_friendship(self, a: int, b: int, now: int) -> None:
        async with self._tx() as conn:
            await conn.execute(
                self._insert_ignore(t.friendships),
                [{"user_id": a, "friend_id": b, "since": now}, {"user_id": b, "friend_id": a, "since": now}],
            )

    @unavailable
    async def remove_friendship(self, a: int, b: int) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                delete(t.friendships).where(
                    or_(
                        and_(t.friendships.c.user_id == a, t.friendships.c.friend_id == b),
                        and_(t.friendships.c.user_id == b, t.friendships.c.friend_id == a),
                    )
                )
            )
            return bool(result.rowcount)

    async def _requests_where(self, conn: AsyncConnection, clause: Any) -> list[FriendRequest]:
        rows = list(
            await conn.execute(
                select(t.friend_requests).where(clause).order_by(t.friend_requests.c.id.desc())
            )
        )
        ids = {r.from_id for r in rows} | {r.to_id for r in rows}
        people = {}
        if ids:
            people = {
                row.id: user_of(row)
                for row in await conn.execute(select(*USER_COLS).where(t.users.c.id.in_(ids)))
            }
        return [
            FriendRequest(
                id=r.id,
                from_user=people[r.from_id],
                to_user=people[r.to_id],
                note=r.note,
                status=r.status,
                ts=r.created_at,
            )
            for r in rows
        ]

    @unavailable
    async def create_friend_request(self, from_id: int, to_id: int, note: str, now: int) -> FriendRequest:
        async with self._tx() as conn:
            request_id = (
                await conn.execute(
                    insert(t.friend_requests)
                    .values(from_id=from_id, to_id=to_id, note=note, status="pending", created_at=now)
                    .returning(t.friend_requests.c.id)
                )
            ).scalar_one()
            return (await self._requests_where(conn, t.friend_requests.c.id == request_id))[0]

    @unavailable
    async def friend_request(self, request_id: int) -> FriendRequest | None:
        async with self.engine.connect() as conn:
            found = await self._requests_where(conn, t.friend_requests.c.id == request_id)
        return found[0] if found else None

    @unavailable
    async def pending_request(self, from_id: int, to_id: int) -> FriendRequest | None:
        async with self.engine.connect() as conn:
            found = await self._requests_where(
                conn,
                and_(
                    t.friend_requests.c.from_id == from_id,
                    t.friend_requests.c.to_id == to_id,
                    t.friend_requests.c.status == "pending",
                ),
            )
        return found[0] if found else None

    @unavailable
    async def answer_friend_request(self, request_id: int, status: str) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                update(t.friend_requests)
                .where(t.friend_requests.c.id == request_id, t.friend_requests.c.status == "pending")
                .values(status=status)
            )
            return result.rowcount == 1

    @unavailable
    async def accept_friend_request(self, request_id: int, now: int) -> bool:
        fr = t.friend_requests
        async with self._tx() as conn:
            pair = (
                await conn.execute(
                    update(fr)
                    .where(fr.c.id == request_id, fr.c.status == "pending")
                    .values(status="accepted")
                    .returning(fr.c.from_id, fr.c.to_id)
                )
            ).first()
            if pair is None:
                return False
            a, b = pair
            await conn.execute(
                self._insert_ignore(t.friendships),
                [{"user_id": a, "friend_id": b, "since": now}, {"user_id": b, "friend_id": a, "since": now}],
            )
        return True

    @unavailable
    async def friend_requests(self, user_id: int) -> tuple[list[FriendRequest], list[FriendRequest]]:
        pending = t.friend_requests.c.status == "pending"
        async with self.engine.connect() as conn:
            incoming = await self._requests_where(conn, and_(t.friend_requests.c.to_id == user_id, pending))
            outgoing = await self._requests_where(conn, and_(t.friend_requests.c.from_id == user_id, pending))
        return incoming, outgoing

    # -- messages -------------------------------------------------------------------------------
    @unavailable
    async def store_messages(
        self, batch: list[NewMessage], admit: Admit | None = None
    ) -> list[Stored | Rejected]:
        if self._batch_writer is not None and self._batch_writer.handles(batch):
            try:
                return list(await self._batch_writer.store(batch))
            except sqlite3.IntegrityError:
                pass  # another writer (an admin command, a second process) raced us: the general path retries
        for attempt in range(3):
            try:
                return await self._store_messages(batch, admit)
            except IntegrityError:
                # Another node stored one of these (sender, cmid) between our lookup and our insert: the
                # retry's lookup finds it and returns it as a duplicate.
                if attempt == 2:
                    raise
            except DBAPIError as exc:
                state = _sqlstate(exc) or ""
                if state.startswith("22"):  # data exception: a value of one message, not the database
                    if len(batch) == 1:
                        why = "this message holds a value that cannot be stored"
                        return [Rejected(HubbubError(Code.INVALID_FIELD, why))]
                    # Not UNAVAILABLE (the whole batch would fail for one message): the batcher stores its
                    # messages one by one, and this one is refused alone.
                    raise UnstorableBatch(state) from exc
                # Rows are locked in one order, so deadlocks should not happen; a serialization failure or
                # deadlock rolled everything back, and trying again is safe.
                if attempt == 2 or state not in _RETRYABLE_SQLSTATES:
                    raise
        raise AssertionError("unreachable")

    async def _store_messages(self, batch: list[NewMessage], admit: Admit | None) -> list[Stored | Rejected]:
        """Execute the batch's plan (write_plan.py) with SQLAlchemy Core, in one transaction."""
        msgs = t.messages
        async with self._tx() as conn:
            existing: dict[plan.Key, Message] = {}
            # One "sender = ? AND cmid IN (...)" per sender: both engines use the (sender, cmid) index for
            # that, where SQLite scans the whole table for a row-value "(sender, cmid) IN (...)".
            lookups = list(plan.lookups(batch).items())
            for start in range(0, len(lookups), 100):
                clause = or_(
                    *(and_(msgs.c.sender == s, msgs.c.cmid.in_(c)) for s, c in lookups[start : start + 100])
                )
                rows = await conn.execute(select(msgs).where(clause))
                existing.update({(row.sender, row.cmid): message_of(row) for row in rows})
            fresh, rejected = plan.split(batch, existing)

            group_convs = plan.group_convs(fresh)
            # A resend is told who should hear of its message now, as a new message is, and republished:
            # the first try may have stored it and died before publishing (issue 12.5).
            dup_groups = plan.duplicate_groups(existing)
            facts: dict[str, GroupFacts] = {}
            floors: dict[str, dict[int, int]] = {}
            fanout = None
            if group_convs:
                # Lock first, then read the members: a kick committed before our lock is seen; one after
                # it waits for us. Either way the message and the membership agree.
                await self._lock_conversations(conn, group_convs)
            if group_convs or dup_groups:
                senders = plan.senders_by_conv(fresh, existing)
                every = sorted({*group_convs, *dup_groups})
                facts = await self._group_facts(conn, {c: senders[c] for c in every})
            if dup_groups:
                floors = await self._readers(conn, plan.pushed_groups(dup_groups, facts))
            if group_convs:
                fresh, fanout = plan.admit_groups(fresh, facts, group_convs, admit, rejected)
            stored = await self._append(conn, fresh) if fresh else {}
        return plan.results(batch, existing, rejected, stored, fanout, facts, floors)

    async def _readers(self, conn: AsyncConnection, convs: list[str]) -> dict[str, dict[int, int]]:
        """conv -> member -> floor (a member reads the messages above it), for the given conversations."""
        cm = t.conv_members
        found: dict[str, dict[int, int]] = {}
        if convs:
            query = select(cm.c.conv, cm.c.user_id, cm.c.min_seq).where(cm.c.conv.in_(convs))
            rows = await conn.execute(query)
            for row in rows:
                found.setdefault(row.conv, {})[row.user_id] = row.min_seq
        return found

    async def _append(self, conn: AsyncConnection, fresh: list[NewMessage]) -> dict[plan.Key, Message]:
        """Give new messages their seqs and insert them (and their mentions), inside ``conn``'s transaction."""
        per_conv = plan.by_conversation(fresh)
        await self._ensure_conversations(conn, per_conv)
        top = await self._allocate_seqs(conn, {c: len(ms) for c, ms in per_conv.items()}, fresh[-1].ts)
        stored = plan.number(per_conv, top)
        values: list[dict[str, Any]] = []
        for m in (m for ms in per_conv.values() for m in ms):
            message = stored[(m.sender, m.cmid)]
            values.append(
                {
                    "conv": message.conv,
                    "seq": message.seq,
                    "id": m.id,
                    "sender": m.sender,
                    "cmid": m.cmid,
                    "type": m.type,
                    "body": json_encode(m.body).decode(),
                    "ts": m.ts,
                    "recalled": False,
                }
            )
            if m.mentions or m.mention_all:
                await self._record_mention(conn, m, message.seq)
        await conn.execute(insert(t.messages), values)
        return stored

    async def _record_mention(self, conn: AsyncConnection, m: NewMessage, seq: int) -> None:
        cm = t.conv_members
        who = cm.c.user_id != m.sender if m.mention_all else cm.c.user_id.in_(m.mentions)
        await conn.execute(update(cm).where(cm.c.conv == m.conv, who).values(mention_seq=seq))

    async def _ensure_conversations(
        self, conn: AsyncConnection, per_conv: dict[str, list[NewMessage]]
    ) -> None:
        convs = sorted(per_conv)  # one lock order for every writer (see _allocate_seqs)
        known = set(
            (
                await conn.execute(select(t.conversations.c.conv).where(t.conversations.c.conv.in_(convs)))
            ).scalars()
        )
        missing = [c for c in convs if c not in known]
        if not missing:
            return
        ts = per_conv[missing[0]][0].ts
        await conn.execute(
            self._insert_ignore(t.conversations),
            [{"conv": c, "max_seq": 0, "updated_at": ts} for c in missing],
        )
        members = [
            {"user_id": uid, "conv": c, "read_seq": 0, "min_seq": 0}
            for c in missing
            for uid in per_conv[c][0].members
        ]
        if members:
            await conn.execute(self._insert_ignore(t.conv_members), members)

    async def _lock_conversations(self, conn: AsyncConnection, convs: list[str]) -> None:
        """Lock the rows in one order (by conv): an UPDATE locks them in scan order, and two nodes updating
        overlapping sets in different orders would deadlock. (SQLite: the writer lock already serializes.)"""
        if self.dialect == "postgresql":
            c = t.conversations
            await conn.execute(
                select(c.c.conv).where(c.c.conv.in_(convs)).order_by(c.c.conv).with_for_update()
            )

    async def _allocate_seqs(self, conn: AsyncConnection, counts: dict[str, int], now: int) -> dict[str, int]:
        """Take ``counts[conv]`` seqs from each conversation in one statement; the new max seq of each.

        The UPDATE locks the rows until commit, so concurrent writers (other nodes) queue behind it and
        seqs stay gap-free and unique.
        """
        convs = t.conversations
        await self._lock_conversations(conn, list(counts))
        increment = case(counts, value=convs.c.conv) if len(counts) > 1 else next(iter(counts.values()))
        rows = await conn.execute(
            update(convs)
            .where(convs.c.conv.in_(list(counts)))
            .values(max_seq=convs.c.max_seq + increment, updated_at=now)
            .returning(convs.c.conv, convs.c.max_seq)
        )
        return {row.conv: row.max_seq for row in rows}

    @unavailable
    async def messages_after(self, conv: str, after_seq: int, limit: int) -> list[Message]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.messages)
                .where(t.messages.c.conv == conv, t.messages.c.seq > after_seq)
                .order_by(t.messages.c.seq)
                .limit(limit)
            )
            return [message_of(row) for row in rows]

    @unavailable
    async def messages_before(self, conv: str, before_seq: int, limit: int, min_seq: int) -> list[Message]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.messages)
                .where(t.messages.c.conv == conv, t.messages.c.seq < before_seq, t.messages.c.seq > min_seq)
                .order_by(t.messages.c.seq.desc())
                .limit(limit)
            )
            return [message_of(row) for row in reversed(list(rows))]

    @unavailable
    async def message(self, conv: str, seq: int) -> Message | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(t.messages).where(t.messages.c.conv == conv, t.messages.c.seq == seq)
                )
            ).first()
        return None if row is None else message_of(row)

    @unavailable
    async def recall_message(
        self, seq: int, notice: NewMessage, admit: Admit | None = None
    ) -> Stored | Rejected:
        for attempt in range(3):
            try:
                return await self._recall_message(seq, notice, admit)
            except IntegrityError:
                # Another node stored this notice between our lookup and our insert: the retry finds it.
                if attempt == 2:
                    raise
            except DBAPIError as exc:
                if attempt == 2 or _sqlstate(exc) not in _RETRYABLE_SQLSTATES:
                    raise
        raise AssertionError("unreachable")

    async def _recall_message(self, seq: int, notice: NewMessage, admit: Admit | None) -> Stored | Rejected:
        msgs, conv = t.messages, notice.conv
        async with self._tx() as conn:
            found = (
                await conn.execute(
                    select(msgs).where(msgs.c.sender == notice.sender, msgs.c.cmid == notice.cmid)
                )
            ).first()
            if found is not None:
                return Stored(message=message_of(found), duplicate=True)
            recipients, hot = notice.members, False
            quiet: tuple[int, ...] = ()
            if conv.startswith("g:"):
                # Lock, then read the group: a freeze, dismissal or kick committed before the lock is seen;
                # one after it waits for us (the same order as store_messages).
                await self._lock_conversations(conn, [conv])
                facts = (await self._group_facts(conn, {conv: {notice.sender}})).get(conv)
                if facts is None:
                    return Rejected(not_found("group"))
                refused = admit(notice, facts) if admit is not None else None
                if refused is not None:
                    return Rejected(refused)
                hot = facts.hot
                recipients = () if hot else tuple(facts.members)
                quiet = () if hot else plan.quiet_of(facts)
            await conn.execute(
                update(msgs).where(msgs.c.conv == conv, msgs.c.seq == seq).values(recalled=True, body="{}")
            )
            await self._forget_actions(conn, conv, seq)
            stored = await self._append(conn, [notice])
        message = stored[(notice.sender, notice.cmid)]
        return Stored(message=message, duplicate=False, recipients=recipients, hot=hot, quiet=quiet)

    @unavailable
    async def member_state(self, conv: str, user_id: int) -> tuple[int, int] | None:
        cm, c = t.conv_members, t.conversations
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(cm.c.read_seq, cm.c.min_seq, c.c.purged_seq)
                    .outerjoin(c, c.c.conv == cm.c.conv)
                    .where(cm.c.conv == conv, cm.c.user_id == user_id)
                )
            ).first()
        # Below the purged floor there is nothing to see (retention): readers start above it.
        return None if row is None else (row.read_seq, max(row.min_seq, row.purged_seq or 0))

    @unavailable
    async def set_read_seq(self, conv: str, user_id: int, seq: int) -> int | None:
        cm = t.conv_members
        async with self._tx() as conn:
            max_seq = (
                await conn.execute(select(t.conversations.c.max_seq).where(t.conversations.c.conv == conv))
            ).scalar_one_or_none()
            if max_seq is None:
                return None
            target = min(seq, max_seq)
            await conn.execute(
                update(cm)
                .where(cm.c.conv == conv, cm.c.user_id == user_id, cm.c.read_seq < target)
                .values(read_seq=target)
            )
            return (
                await conn.execute(select(cm.c.read_seq).where(cm.c.conv == conv, cm.c.user_id == user_id))
            ).scalar_one_or_none()

    @unavailable
    async def conversations_of(self, user_id: int) -> list[ConvState]:
        cm, c, m = t.conv_members, t.conversations, t.messages
        async with self.engine.connect() as conn:
            rows = list(
                await conn.execute(
                    select(
                        cm.c.conv,
                        cm.c.read_seq,
                        cm.c.min_seq,
                        cm.c.mention_seq,
                        c.c.max_seq,
                        c.c.updated_at,
                        c.c.purged_seq,
                    )
                    .join(c, c.c.conv == cm.c.conv)
                    .where(cm.c.user_id == user_id)
                    .order_by(c.c.updated_at.desc())
                )
            )
            last: dict[str, Message] = {}
            tops = [(row.conv, row.max_seq) for row in rows if row.max_seq > max(row.min_seq, row.purged_seq)]
            for start in range(0, len(tops), 500):
                found = await conn.execute(
                    select(m).where(tuple_(m.c.conv, m.c.seq).in_(tops[start : start + 500]))
                )
                last.update({msg.conv: message_of(msg) for msg in found})
            unread_rows = await conn.execute(
                select(m.c.conv, func.count())
                .select_from(m.join(cm, and_(cm.c.conv == m.c.conv, cm.c.user_id == user_id)))
                .where(
                    m.c.seq > cm.c.read_seq,
                    m.c.seq > cm.c.min_seq,
                    m.c.sender != user_id,
                    m.c.type.notin_(NOT_UNREAD_TYPES),
                    m.c.recalled.is_(False),
                )
                .group_by(m.c.conv)
            )
            unread = {conv: count for conv, count in unread_rows}
            # A pending mention whose message was recalled no longer counts (only the newest mention is
            # kept per member, so a recalled one hides an older unread mention: the rare case loses the flag,
            # never the messages).
            pending = [(row.conv, row.mention_seq) for row in rows if row.mention_seq > row.read_seq]
            withdrawn: set[str] = set()
            for start in range(0, len(pending), 500):
                found = await conn.execute(
                    select(m.c.conv).where(
                        tuple_(m.c.conv, m.c.seq).in_(pending[start : start + 500]), m.c.recalled.is_(True)
                    )
                )
                withdrawn.update(found.scalars())
            gm = t.group_members
            dnd = {
                f"g:{gid}"
                for gid in (
                    await conn.execute(
                        select(gm.c.group_id).where(gm.c.user_id == user_id, gm.c.dnd.is_(True))
                    )
                ).scalars()
            }
        return [
            ConvState(
                conv=row.conv,
                max_seq=row.max_seq,
                read_seq=row.read_seq,
                min_seq=row.min_seq,
                updated_at=row.updated_at,
                unread=unread.get(row.conv, 0),
                last=last.get(row.conv),
                mention_seq=0
                if row.conv in withdrawn or row.mention_seq <= row.purged_seq
                else row.mention_seq,
                dnd=row.conv in dnd,
                purged_seq=row.purged_seq,
            )
            for row in rows
        ]

    @unavailable
    async def peer_read_seqs(self, user_id: int) -> dict[str, int]:
        mine, theirs = t.conv_members.alias("mine"), t.conv_members.alias("theirs")
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(theirs.c.conv, theirs.c.read_seq)
                .join(mine, mine.c.conv == theirs.c.conv)
                .where(mine.c.user_id == user_id, theirs.c.user_id != user_id, mine.c.conv.like("p:%"))
            )
            return {conv: seq for conv, seq in rows}




def _never_hot(_group: Group) -> bool:
    return False


class UnstorableBatch(Exception):
    """A batch holds a value the database refuses (SQLSTATE class 22, e.g. a NUL in text, an integer out of
    its column's range): nothing was stored. Deliberately not a database error, so it is not reported as
    ``unavailable``: the caller stores the messages one at a time to find which one."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets readers run beside the writer; synchronous=NORMAL keeps every committed transaction across a
    # process crash (only an OS crash or power loss can drop the last few), at a fraction of FULL's fsyncs.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_writer_connect(dbapi_conn: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_conn, record)
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver would otherwise send a deferred BEGIN).
    dbapi_conn.isolation_level = None


def _sqlite_begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")
