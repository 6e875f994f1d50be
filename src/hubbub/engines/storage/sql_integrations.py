"""SQL implementation of ``IntegrationStorage`` (engines/storage/base_integrations.py); mixed into
``SqlStorage``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import User
from hubbub.engines.storage import leases
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base_integrations import (
    Bot,
    BotCredential,
    BotToken,
    Delivery,
    IncomingHook,
    OidcFlow,
    OutgoingHook,
)
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import USER_COLS, unavailable, user_of

#: A webhook's lease: held by a node (its id), renewed by it between batches.
WEBHOOK_LEASE = leases.Leased(t.outgoing_webhooks, key=("id",))
#: A bot's password hash: no argon2 hash has this form, so no password ever matches it.
NO_PASSWORD = "!bot"


def _token_of(row: Any) -> BotToken:
    return BotToken(
        id=row.id,
        bot_id=row.bot_id,
        scopes=[s for s in row.scopes.split(",") if s],
        name=row.name,
        created_at=row.created_at,
        revoked=bool(row.revoked),
    )


def _incoming_of(row: Any) -> IncomingHook:
    return IncomingHook(
        id=row.id,
        conv=row.conv,
        bot_id=row.bot_id,
        owner_id=row.owner_id,
        name=row.name,
        created_at=row.created_at,
        revoked=bool(row.revoked),
    )


def _outgoing_of(row: Any) -> OutgoingHook:
    return OutgoingHook(
        id=row.id,
        owner_id=row.owner_id,
        conv=row.conv,
        url=row.url,
        secret=row.secret,
        events=[e for e in row.events.split(",") if e],
        bot_id=row.bot_id,
        cursor_seq=row.cursor_seq,
        enabled=bool(row.enabled),
        failures=row.failures,
        next_attempt_at=row.next_attempt_at,
        created_at=row.created_at,
    )


class SqlIntegrations(SqlHost):
    async def _update(self, table: Any, *where: Any, **values: Any) -> bool:
        """Set ``values`` on the rows matching ``where`` (a revoke, an enable, a lease holder's write): True
        if there was one."""
        async with self._tx() as conn:
            return bool((await conn.execute(update(table).where(*where).values(**values))).rowcount)

    # -- bots --------------------------------------------------------------------------------------
    @unavailable
    async def create_bot(self, username: str, nickname: str, owner_id: int, now: int) -> User:
        try:
            async with self._tx() as conn:
                user_id = await self._insert_user(conn, username, nickname, NO_PASSWORD, now)
                # Never the "first user is admin" of a fresh server: a bot is nobody's admin.
                await conn.execute(
                    update(t.users).where(t.users.c.id == user_id).values(is_bot=True, is_admin=False)
                )
                await conn.execute(insert(t.bots).values(user_id=user_id, owner_id=owner_id, created_at=now))
        except IntegrityError as exc:
            raise HubbubError(Code.USERNAME_TAKEN, f"username {username!r} is taken") from exc
        return User(id=user_id, username=username, nickname=nickname, bot=True)

    @unavailable
    async def bots(self, owner_id: int | None) -> list[Bot]:
        query = select(*USER_COLS, t.bots.c.owner_id, t.bots.c.created_at).join(
            t.bots, t.bots.c.user_id == t.users.c.id
        )
        if owner_id is not None:
            query = query.where(t.bots.c.owner_id == owner_id)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query.order_by(t.bots.c.user_id))
            return [Bot(user=user_of(r), owner_id=r.owner_id, created_at=r.created_at) for r in rows]

    @unavailable
    async def bot(self, bot_id: int) -> Bot | None:
        query = (
            select(*USER_COLS, t.bots.c.owner_id, t.bots.c.created_at)
            .join(t.bots, t.bots.c.user_id == t.users.c.id)
            .where(t.bots.c.user_id == bot_id)
        )
        async with self.engine.connect() as conn:
            r = (await conn.execute(query)).first()
        return None if r is None else Bot(user=user_of(r), owner_id=r.owner_id, created_at=r.created_at)

    @unavailable
    async def add_bot_token(
        self, bot_id: int, token_hash: str, scopes: list[str], name: str, now: int
    ) -> BotToken:
        async with self._tx() as conn:
            result = await conn.execute(
                insert(t.bot_tokens)
                .values(
                    bot_id=bot_id, token_hash=token_hash, scopes=",".join(scopes), name=name, created_at=now
                )
                .returning(t.bot_tokens.c.id)
            )
            token_id = int(result.scalar_one())
        return BotToken(id=token_id, bot_id=bot_id, scopes=scopes, name=name, created_at=now)

    @unavailable
    async def bot_tokens(self, bot_id: int) -> list[BotToken]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.bot_tokens).where(t.bot_tokens.c.bot_id == bot_id).order_by(t.bot_tokens.c.id)
            )
            return [_token_of(r) for r in rows]

    @unavailable
    async def revoke_bot_token(self, bot_id: int, token_id: int) -> bool:
        b = t.bot_tokens
        return await self._update(b, b.c.id == token_id, b.c.bot_id == bot_id, revoked=True)

    @unavailable
    async def bot_credential(self, token_hash: str) -> BotCredential | None:
        query = (
            select(t.bot_tokens, t.users.c.banned)
            .join(t.users, t.users.c.id == t.bot_tokens.c.bot_id)
            .where(t.bot_tokens.c.token_hash == token_hash)
        )
        async with self.engine.connect() as conn:
            r = (await conn.execute(query)).first()
        if r is None:
            return None
        return BotCredential(
            token_id=r.id,
            bot_id=r.bot_id,
            scopes=tuple(s for s in r.scopes.split(",") if s),
            revoked=bool(r.revoked),
            banned=bool(r.banned),
        )

    # -- incoming webhooks -------------------------------------------------------------------------
    @unavailable
    async def create_incoming_hook(
        self, token_hash: str, conv: str, bot_id: int, owner_id: int, name: str, now: int
    ) -> IncomingHook:
        async with self._tx() as conn:
            result = await conn.execute(
                insert(t.incoming_webhooks)
                .values(
                    token_hash=token_hash,
                    conv=conv,
                    bot_id=bot_id,
                    owner_id=owner_id,
                    name=name,
                    created_at=now,
                )
                .returning(t.incoming_webhooks.c.id)
            )
            hook_id = int(result.scalar_one())
        return IncomingHook(
            id=hook_id, conv=conv, bot_id=bot_id, owner_id=owner_id, name=name, created_at=now
        )

    @unavailable
    async def incoming_hook(self, token_hash: str) -> IncomingHook | None:
        async with self.engine.connect() as conn:
            r = (
                await conn.execute(
                    select(t.incoming_webhooks).where(t.incoming_webhooks.c.token_hash == token_hash)
                )
            ).first()
        return None if r is None else _incoming_of(r)

    @unavailable
    async def incoming_hooks(self, owner_id: int) -> list[IncomingHook]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(t.incoming_webhooks)
                .where(t.incoming_webhooks.c.owner_id == owner_id)
                .order_by(t.incoming_webhooks.c.id)
            )
            return [_incoming_of(r) for r in rows]

    @unavailable
    async def revoke_incoming_hook(self, owner_id: int, hook_id: int) -> bool:
        h = t.incoming_webhooks
        return await self._update(h, h.c.id == hook_id, h.c.owner_id == owner_id, revoked=True)

    @unavailable
    async def create_outgoing_hook(
        self, owner_id: int, conv: str, url: str, secret: str, events: list[str], bot_id: int | None, now: int
    ) -> OutgoingHook:
        async with self._tx() as conn:
            newest = (
                await conn.execute(select(func.max(t.messages.c.seq)).where(t.messages.c.conv == conv))
            ).scalar_one_or_none() or 0
            result = await conn.execute(
                insert(t.outgoing_webhooks)
                .values(
                    owner_id=owner_id,
                    conv=conv,
                    url=url,
                    secret=secret,
                    events=",".join(events),
                    bot_id=bot_id,
                    cursor_seq=newest,
                    enabled=True,
                    created_at=now,
                )
                .returning(t.outgoing_webhooks.c.id)
            )
            hook_id = int(result.scalar_one())
        return OutgoingHook(
            id=hook_id,
            owner_id=owner_id,
            conv=conv,
            url=url,
            secret=secret,
            events=events,
            bot_id=bot_id,
            cursor_seq=newest,
            created_at=now,
        )

    @unavailable
    async def outgoing_hooks(self, owner_id: int | None) -> list[OutgoingHook]:
        w = t.outgoing_webhooks
        query = select(w).order_by(w.c.id)
        query = (
            query.where(w.c.enabled.is_(True)) if owner_id is None else query.where(w.c.owner_id == owner_id)
        )
        async with self.engine.connect() as conn:
            return [_outgoing_of(r) for r in await conn.execute(query)]

    @unavailable
    async def webhooks_waiting(self) -> set[int]:
        w, c = t.outgoing_webhooks, t.conversations
        # Past the cursor and past what retention removed: a message there exists.
        query = (
            select(w.c.id)
            .join(c, c.c.conv == w.c.conv)
            .where(w.c.enabled.is_(True), c.c.max_seq > w.c.cursor_seq, c.c.max_seq > c.c.purged_seq)
        )
        async with self.engine.connect() as conn:
            return set((await conn.execute(query)).scalars())

    @unavailable
    async def outgoing_hook(self, hook_id: int) -> OutgoingHook | None:
        w = t.outgoing_webhooks
        async with self.engine.connect() as conn:
            r = (await conn.execute(select(w).where(w.c.id == hook_id))).first()
        return None if r is None else _outgoing_of(r)

    @unavailable
    async def delete_outgoing_hook(self, hook_id: int) -> bool:
        async with self._tx() as conn:
            result = await conn.execute(
                delete(t.outgoing_webhooks).where(t.outgoing_webhooks.c.id == hook_id)
            )
            await conn.execute(
                delete(t.webhook_deliveries).where(t.webhook_deliveries.c.webhook_id == hook_id)
            )
            return bool(result.rowcount)

    @unavailable
    async def enable_outgoing_hook(self, hook_id: int) -> bool:
        w = t.outgoing_webhooks
        return await self._update(w, w.c.id == hook_id, enabled=True, failures=0, next_attempt_at=0)

    @unavailable
    async def claim_webhook(self, hook_id: int, node: str, now: int, lease_ms: int) -> OutgoingHook | None:
        w = t.outgoing_webhooks
        due = [w.c.id == hook_id, w.c.enabled.is_(True), w.c.next_attempt_at <= now]
        async with self._tx() as conn:
            rows = await leases.claim(
                conn, WEBHOOK_LEASE, owner=node, now=now, lease_ms=lease_ms, due=due, renew=True
            )
        return _outgoing_of(rows[0]) if rows else None

    def _leased_by(self, hook_id: int, node: str) -> Any:
        return and_(t.outgoing_webhooks.c.id == hook_id, WEBHOOK_LEASE.held(node))

    @unavailable
    async def advance_webhook(self, hook_id: int, node: str, cursor_seq: int) -> bool:
        w = t.outgoing_webhooks
        return await self._update(
            w,
            self._leased_by(hook_id, node),
            w.c.cursor_seq < cursor_seq,
            cursor_seq=cursor_seq,
            failures=0,
            next_attempt_at=0,
        )

    @unavailable
    async def fail_webhook(
        self, hook_id: int, node: str, failures: int, next_attempt_at: int, disable: bool
    ) -> bool:
        values: dict[str, Any] = {"failures": failures, "next_attempt_at": next_attempt_at}
        if disable:
            values["enabled"] = False
        return await self._update(t.outgoing_webhooks, self._leased_by(hook_id, node), **values)

    @unavailable
    async def release_webhooks(self, node: str, hook_id: int | None = None) -> None:
        where = [] if hook_id is None else [t.outgoing_webhooks.c.id == hook_id]
        async with self._tx() as conn:
            await leases.release(conn, WEBHOOK_LEASE, node, *where)

    @unavailable
    async def log_delivery(self, delivery: Delivery, keep: int, advance_to: int | None = None) -> bool:
        d = t.webhook_deliveries
        w = t.outgoing_webhooks
        advanced = True
        async with self._tx() as conn:
            if advance_to is not None:
                moved = await conn.execute(
                    update(w)
                    .where(self._leased_by(delivery.webhook_id, delivery.node), w.c.cursor_seq < advance_to)
                    .values(cursor_seq=advance_to, failures=0, next_attempt_at=0)
                )
                advanced = moved.rowcount == 1
            await conn.execute(
                insert(d).values(**{f: getattr(delivery, f) for f in delivery.__struct_fields__})
            )
            floor = (
                await conn.execute(
                    select(d.c.id)
                    .where(d.c.webhook_id == delivery.webhook_id)
                    .order_by(d.c.id.desc())
                    .offset(keep)
                    .limit(1)
                )
            ).scalar_one_or_none()
            if floor is not None:
                await conn.execute(delete(d).where(d.c.webhook_id == delivery.webhook_id, d.c.id <= floor))
        return advanced

    @unavailable
    async def deliveries(self, hook_id: int, limit: int) -> list[Delivery]:
        d = t.webhook_deliveries
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(d).where(d.c.webhook_id == hook_id).order_by(d.c.id.desc()).limit(limit)
            )
            return [
                Delivery(
                    webhook_id=r.webhook_id,
                    event_id=r.event_id,
                    event=r.event,
                    attempt=r.attempt,
                    status=r.status,
                    ok=bool(r.ok),
                    response=r.response,
                    duration_ms=r.duration_ms,
                    ts=r.ts,
                    node=r.node,
                )
                for r in rows
            ]

    # -- OpenID Connect ----------------------------------------------------------------------------
    @unavailable
    async def create_oidc_flow(self, flow: OidcFlow) -> None:
        async with self._tx() as conn:
            # Flows older than a day are of no use to anyone: they go as new ones come.
            await conn.execute(
                delete(t.oidc_flows).where(t.oidc_flows.c.created_at < flow.created_at - 86_400_000)
            )
            await conn.execute(
                insert(t.oidc_flows).values(
                    state=flow.state,
                    verifier=flow.verifier,
                    nonce=flow.nonce,
                    redirect_uri=flow.redirect_uri,
                    created_at=flow.created_at,
                )
            )

    async def _take_once(self, used: Any, *where: Any) -> Any:
        """The sign-in row matching ``where`` whose ``used`` flag was still off, now on: one taker wins, a
        replay gets None. One ``UPDATE ... RETURNING``."""
        f = t.oidc_flows
        async with self._tx() as conn:
            stmt = update(f).where(*where, used.is_(False)).values({used: True}).returning(*f.c)
            return (await conn.execute(stmt)).first()

    @unavailable
    async def take_oidc_flow(self, state: str, not_before: int) -> OidcFlow | None:
        f = t.oidc_flows
        r = await self._take_once(f.c.used, f.c.state == state, f.c.created_at >= not_before)
        if r is None:
            return None
        return OidcFlow(
            state=r.state,
            verifier=r.verifier,
            nonce=r.nonce,
            redirect_uri=r.redirect_uri,
            created_at=r.created_at,
        )

    @unavailable
    async def set_oidc_ticket(self, state: str, ticket_hash: str, user_id: int) -> None:
        f = t.oidc_flows
        async with self._tx() as conn:
            await conn.execute(
                update(f).where(f.c.state == state).values(ticket_hash=ticket_hash, user_id=user_id)
            )

    @unavailable
    async def take_oidc_ticket(self, ticket_hash: str, not_before: int) -> int | None:
        f = t.oidc_flows
        r = await self._take_once(
            f.c.ticket_used, f.c.ticket_hash == ticket_hash, f.c.created_at >= not_before
        )
        return None if r is None else r.user_id

    @unavailable
    async def oidc_user(self, issuer: str, subject: str) -> int | None:
        o = t.oidc_links
        async with self.engine.connect() as conn:
            return (
                await conn.execute(select(o.c.user_id).where(o.c.issuer == issuer, o.c.subject == subject))
            ).scalar_one_or_none()

    @unavailable
    async def link_oidc(self, issuer: str, subject: str, user_id: int, now: int) -> None:
        async with self._tx() as conn:
            await conn.execute(
                self._insert_ignore(t.oidc_links).values(
                    issuer=issuer, subject=subject, user_id=user_id, created_at=now
                )
            )
