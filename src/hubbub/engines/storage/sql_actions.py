"""SQL implementation of ``ActionStorage`` (engines/storage/base_actions.py); mixed into ``SqlStorage``.

An action locks its conversation like a send (``_lock_conversations``), reads the group as it is then (the
``admit`` rules), changes its target row and appends its event with ``_append``: the event's seq is taken in
the same transaction as the change, so every node and every terminal applies the changes in one order. An
edit re-indexes its message for search in that transaction too (``_reindex``, beside the indexer through
``_hold_index``): an edit is never stored without it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from hubbub.core.errors import Code, HubbubError, not_found
from hubbub.core.models import Message
from hubbub.engines.storage import schema as t
from hubbub.engines.storage import write_plan as plan
from hubbub.engines.storage.base import Admit, NewMessage, Rejected, Stored
from hubbub.engines.storage.base_actions import (
    MAX_PINS,
    REACTION_USERS_SHOWN,
    ActionResult,
    MessageChange,
    Pin,
)
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import RETRYABLE_SQLSTATES, json_encode, message_of, sqlstate, unavailable

#: Types an action may target: what people send, not notices or other events.
ACTIONABLE_TYPES = ("text", "image", "file", "voice", "video", "notice")

#: What an edit replaces; an edit that changes none of them changes nothing.
_EDITED_KEYS = ("text", "mentions", "mention_all")


class SqlActions(SqlHost):
    @unavailable
    async def apply_actions(
        self, conv: str, actions: list[tuple[NewMessage, MessageChange, Admit | None]]
    ) -> list[ActionResult | Rejected]:
        for attempt in range(3):
            try:
                return await self._apply_actions(conv, actions)
            except IntegrityError:
                # Another node stored one of these events (or the same reaction) meanwhile: the retry sees it.
                if attempt == 2:
                    raise
            except DBAPIError as exc:
                if attempt == 2 or sqlstate(exc) not in RETRYABLE_SQLSTATES:
                    raise
        raise AssertionError("unreachable")

    async def _apply_actions(
        self, conv: str, actions: list[tuple[NewMessage, MessageChange, Admit | None]]
    ) -> list[ActionResult | Rejected]:
        msgs = t.messages
        results: list[ActionResult | Rejected | None] = [None] * len(actions)
        fresh: list[tuple[int, NewMessage, Message, Message]] = []  # (index, notice, target before, after)
        edits = any(change.kind == "edit" for _, change, _ in actions)
        async with self._tx() as conn:
            if edits:  # first, before the row lock: an indexer pass in flight is waited for holding nothing
                await self._hold_index(conn)
            for i, (notice, change, _admit) in enumerate(actions):
                found = (
                    await conn.execute(
                        select(msgs).where(msgs.c.sender == notice.sender, msgs.c.cmid == notice.cmid)
                    )
                ).first()
                if found is not None:  # a retried action: its event as it was stored
                    target = await self._target(conn, conv, change.seq)
                    results[i] = (
                        Rejected(not_found("message"))
                        if target is None
                        else ActionResult(
                            stored=Stored(message=message_of(found), duplicate=True), target=target
                        )
                    )
            recipients: tuple[int, ...] = actions[0][0].members
            hot = False
            quiet: tuple[int, ...] = ()
            await self._lock_conversations(conn, [conv])
            facts = None
            if conv.startswith("g:"):
                senders = {notice.sender for notice, _, _ in actions}
                facts = (await self._group_facts(conn, {conv: senders})).get(conv)
                if facts is not None:
                    hot = facts.hot
                    recipients = () if hot else tuple(facts.members)
                    quiet = () if hot else plan.quiet_of(facts)
            current: dict[int, Message] = {}  # targets as this transaction has left them
            for i, (notice, change, admit) in enumerate(actions):
                if results[i] is not None:
                    continue
                if conv.startswith("g:"):
                    refused = not_found("group") if facts is None else admit(notice, facts) if admit else None
                    if refused is not None:
                        results[i] = Rejected(refused)
                        continue
                target = current.get(change.seq) or await self._target(conn, conv, change.seq)
                if target is None or target.recalled or target.type not in ACTIONABLE_TYPES:
                    results[i] = Rejected(not_found("message"))
                    continue
                outcome = await self._change(conn, notice, change, target)
                if isinstance(outcome, HubbubError):
                    results[i] = Rejected(outcome)
                elif outcome is None:
                    results[i] = ActionResult(stored=None, target=target)
                else:
                    current[change.seq] = outcome
                    fresh.append((i, notice, target, outcome))
            if fresh:
                stored = await self._append(conn, [notice for _, notice, _, _ in fresh])
                for i, notice, before, after in fresh:
                    message = stored[(notice.sender, notice.cmid)]
                    if actions[i][1].kind == "edit":
                        await self._record_edit(conn, before, message.seq)
                    event = Stored(
                        message=message, duplicate=False, recipients=recipients, hot=hot, quiet=quiet
                    )
                    results[i] = ActionResult(stored=event, target=after)
                edited = [actions[i][1].seq for i, *_ in fresh if actions[i][1].kind == "edit"]
                if edited:  # search finds the new text from this commit on, never the old
                    await self._reindex(conn, conv, edited)
        # Each action's target as the batch left it (a later action on the same message came after it).
        done = [r for r in results if r is not None]
        assert len(done) == len(actions)
        return done

    async def _target(self, conn: AsyncConnection, conv: str, seq: int) -> Message | None:
        msgs = t.messages
        row = (await conn.execute(select(msgs).where(msgs.c.conv == conv, msgs.c.seq == seq))).first()
        return None if row is None else message_of(row)

    async def _change(
        self, conn: AsyncConnection, notice: NewMessage, change: MessageChange, target: Message
    ) -> Message | HubbubError | None:
        """Apply the change to the target's rows; the target as it is now, None if nothing changed, or the
        refusal. ``notice.body`` gets what only this transaction knows (a reaction's new count)."""
        if change.kind == "pin":
            return await self._pin(conn, notice, change, target)
        if change.kind == "edit":
            assert change.body is not None
            body = change.body
            if all(body.get(k) == target.body.get(k) for k in _EDITED_KEYS):
                return None
        else:
            reacted = await self._react(conn, notice, change, target)
            if reacted is None or isinstance(reacted, HubbubError):
                return reacted
            body = reacted
        msgs = t.messages
        await conn.execute(
            update(msgs)
            .where(msgs.c.conv == target.conv, msgs.c.seq == target.seq)
            .values(body=json_encode(body).decode())
        )
        return Message(
            id=target.id,
            conv=target.conv,
            seq=target.seq,
            sender=target.sender,
            type=target.type,
            body=body,
            ts=target.ts,
            cmid=target.cmid,
        )

    async def _react(
        self, conn: AsyncConnection, notice: NewMessage, change: MessageChange, target: Message
    ) -> dict[str, Any] | HubbubError | None:
        r = t.message_reactions
        key = (r.c.conv == target.conv, r.c.seq == target.seq, r.c.emoji == change.emoji)
        mine = await conn.execute(select(r.c.user_id).where(*key, r.c.user_id == notice.sender))
        if (mine.first() is not None) == change.on:
            return None  # already so: reacting twice is one reaction
        reactions: list[dict[str, Any]] = [dict(x) for x in target.body.get("reactions", [])]
        entry = next((x for x in reactions if x.get("emoji") == change.emoji), None)
        if change.on:
            if entry is None:
                if len(reactions) >= change.max_distinct:
                    limit = change.max_distinct
                    return HubbubError(
                        Code.REACTION_LIMIT, f"a message takes at most {limit} different emoji"
                    )
                entry = {"emoji": change.emoji, "count": 0, "users": []}
                reactions.append(entry)
            values = {"conv": target.conv, "seq": target.seq, "emoji": change.emoji, "user_id": notice.sender}
            await conn.execute(insert(r).values(**values, ts=notice.ts))
            entry["count"] += 1
            if len(entry["users"]) < REACTION_USERS_SHOWN:
                entry["users"] = [*entry["users"], notice.sender]
        else:
            await conn.execute(delete(r).where(*key, r.c.user_id == notice.sender))
            if entry is None:  # (a body that lost its aggregate: count from the rows)
                entry = {"emoji": change.emoji, "count": 1, "users": []}
                reactions.append(entry)
            entry["count"] -= 1
            if entry["count"] <= 0:
                reactions.remove(entry)
            elif notice.sender in entry["users"]:
                first = (
                    select(r.c.user_id).where(*key).order_by(r.c.ts, r.c.user_id).limit(REACTION_USERS_SHOWN)
                )
                entry["users"] = list((await conn.execute(first)).scalars())
        notice.body["count"] = max(entry["count"], 0)
        body = {k: v for k, v in target.body.items() if k != "reactions"}
        if reactions:
            body["reactions"] = reactions
        return body

    async def _pin(
        self, conn: AsyncConnection, notice: NewMessage, change: MessageChange, target: Message
    ) -> Message | HubbubError | None:
        p = t.message_pins
        pinned = (
            await conn.execute(select(p.c.seq).where(p.c.conv == target.conv, p.c.seq == target.seq))
        ).first() is not None
        if pinned == change.on:
            return None
        if change.on:
            count = (
                await conn.execute(select(func.count()).select_from(p).where(p.c.conv == target.conv))
            ).scalar_one()
            if count >= MAX_PINS:
                return HubbubError(Code.CONFLICT, f"a conversation has at most {MAX_PINS} pinned messages")
            row = {"conv": target.conv, "seq": target.seq, "pinned_by": notice.sender, "ts": notice.ts}
            await conn.execute(insert(p).values(**row))
        else:
            await conn.execute(delete(p).where(p.c.conv == target.conv, p.c.seq == target.seq))
        return target

    async def _record_edit(self, conn: AsyncConnection, before: Message, event_seq: int) -> None:
        """Keep the text the edit replaced (with the time it was written) as the next version."""
        e = t.message_edits
        version = (
            await conn.execute(
                select(func.count()).select_from(e).where(e.c.conv == before.conv, e.c.seq == before.seq)
            )
        ).scalar_one()
        await conn.execute(
            insert(e).values(
                conv=before.conv,
                seq=before.seq,
                version=version,
                text=str(before.body.get("text", "")),
                ts=int(before.body.get("edited", before.ts)),
                event_seq=event_seq,
            )
        )

    async def _forget_actions(self, conn: AsyncConnection, conv: str, seq: int) -> None:
        """A recalled message takes its actions with it: its earlier texts (and the ``edit`` events that
        carry them, blanked), its reactions and its pin."""
        e, msgs = t.message_edits, t.messages
        events = list(
            (await conn.execute(select(e.c.event_seq).where(e.c.conv == conv, e.c.seq == seq))).scalars()
        )
        if events:
            await conn.execute(
                update(msgs).where(msgs.c.conv == conv, msgs.c.seq.in_(events)).values(body="{}")
            )
            await conn.execute(delete(e).where(e.c.conv == conv, e.c.seq == seq))
        for table in (t.message_reactions, t.message_pins):
            await conn.execute(delete(table).where(table.c.conv == conv, table.c.seq == seq))

    # -- reads ------------------------------------------------------------------------------------
    @unavailable
    async def message_edits(self, conv: str, seq: int) -> list[tuple[str, int]]:
        e = t.message_edits
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(e.c.text, e.c.ts).where(e.c.conv == conv, e.c.seq == seq).order_by(e.c.version)
            )
            return [(row.text, row.ts) for row in rows]

    @unavailable
    async def reaction_users(self, conv: str, seq: int, emoji: str, after: int, limit: int) -> list[int]:
        r = t.message_reactions
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(r.c.user_id)
                .where(r.c.conv == conv, r.c.seq == seq, r.c.emoji == emoji, r.c.user_id > after)
                .order_by(r.c.user_id)
                .limit(limit)
            )
            return list(rows.scalars())

    @unavailable
    async def pins(self, conv: str) -> list[Pin]:
        p = t.message_pins
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(p.c.seq, p.c.pinned_by, p.c.ts)
                .where(p.c.conv == conv)
                .order_by(p.c.ts.desc(), p.c.seq.desc())
                .limit(MAX_PINS)
            )
            return [Pin(seq=row.seq, by=row.pinned_by, ts=row.ts) for row in rows]

    @unavailable
    async def hide_messages(self, user_id: int, conv: str, seqs: list[int]) -> None:
        if seqs:
            async with self._tx() as conn:
                rows = [{"user_id": user_id, "conv": conv, "seq": seq} for seq in sorted(set(seqs))]
                await conn.execute(self._insert_ignore(t.hidden_messages), rows)

    @unavailable
    async def hidden_in(self, conv: str) -> dict[int, list[int]]:
        h = t.hidden_messages
        found: dict[int, list[int]] = {}
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(h.c.user_id, h.c.seq).where(h.c.conv == conv).order_by(h.c.seq))
            for row in rows:
                found.setdefault(row.user_id, []).append(row.seq)
        return found

    @unavailable
    async def hidden_seqs(self, user_id: int, conv: str, low: int = 0, high: int = 2**62) -> list[int]:
        h = t.hidden_messages
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(h.c.seq)
                .where(h.c.user_id == user_id, h.c.conv == conv, h.c.seq > low, h.c.seq <= high)
                .order_by(h.c.seq)
            )
            return list(rows.scalars())
