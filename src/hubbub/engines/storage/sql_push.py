"""Web Push for :class:`SqlStorage`: devices, settings and the outgoing queue (base_push.PushStorage).

The queue's claim is ``leases.claim`` over the due rows (one ``UPDATE ... RETURNING``; disjoint rows for nodes
claiming at once); each claim's owner string is a fresh lease id, which ``finish_pushes`` must present.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, case, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row

from hubbub.core.convs import parse_group
from hubbub.engines.storage import leases
from hubbub.engines.storage import schema as t
from hubbub.engines.storage.base_push import Finished, NewPush, PushDevice, PushJob, PushPrefs, PushTarget
from hubbub.engines.storage.sql_host import SqlHost
from hubbub.engines.storage.sqlutil import unavailable

#: Rows per multi-row insert: SQLite allows 32,766 bound values in one statement.
_CHUNK = 500
_DEVICE_COLS = (
    t.push_devices.c.id,
    t.push_devices.c.user_id,
    t.push_devices.c.sid,
    t.push_devices.c.kind,
    t.push_devices.c.endpoint,
    t.push_devices.c.p256dh,
    t.push_devices.c.auth,
    t.push_devices.c.label,
    t.push_devices.c.created_at,
    t.push_devices.c.last_ok_at,
)
#: Each row's lease: the owner is one claim's lease id (``node/random``), not the node.
OUTBOX_LEASE = leases.Leased(t.push_outbox, key=("device_id", "conv"), owner="lease")
_JOB_COLS = ("device_id", "conv", "kind", "seq", "count", "title", "text", "mention", "attempts")
_MINE = "WHERE device_id = :device AND conv = :conv AND lease = :lease"
_UNCHANGED = "kind = :kind AND seq = :seq AND count = :count"
#: A claim ended (sent, or dropped): every SET reads the row as it was, so ``_UNCHANGED`` means "nothing
#: newer arrived while it was out"; a newer message then waits out the window, a clear goes at once.
_END = text(
    "UPDATE push_outbox SET lease = '', lease_until = 0, attempts = 0, "
    "sent_seq = CASE WHEN :sent = 1 AND sent_seq < :seq THEN :seq ELSE sent_seq END, "
    "shown = CASE WHEN :sent = 1 THEN :shown ELSE shown END, "
    "last_sent_at = CASE WHEN :sent = 1 THEN :now ELSE last_sent_at END, "
    f"kind = CASE WHEN {_UNCHANGED} THEN '' ELSE kind END, "
    f"due_at = CASE WHEN {_UNCHANGED} THEN due_at WHEN kind = 'msg' THEN :later ELSE :now END {_MINE}"
)
_RETRY = text(
    f"UPDATE push_outbox SET lease = '', lease_until = 0, attempts = attempts + 1, due_at = :retry_at {_MINE}"
)
_LIVE = and_(t.sessions.c.sid == t.push_devices.c.sid, t.sessions.c.revoked == False)  # noqa: E712


def _device(row: Row[Any] | Any) -> PushDevice:
    return PushDevice(
        id=row.id,
        user_id=row.user_id,
        sid=row.sid,
        kind=row.kind,
        endpoint=row.endpoint,
        p256dh=row.p256dh,
        auth=row.auth,
        label=row.label,
        created_at=row.created_at,
        last_ok_at=row.last_ok_at,
    )


def _prefs(row: Row[Any] | Any) -> PushPrefs:
    if row is None or row.preview is None:
        return PushPrefs()
    return PushPrefs(
        preview=row.preview, mentions_through_mute=bool(row.mentions_through_mute), hot_groups=row.hot_groups
    )


class SqlPush(SqlHost):
    def _upsert(self, table: Any) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- devices ------------------------------------------------------------------------------------
    @unavailable
    async def add_push_device(self, device: PushDevice) -> PushDevice:
        d = t.push_devices
        values = {f: getattr(device, f) for f in device.__struct_fields__}
        stmt = self._upsert(d).values(**values)
        moved = {
            k: stmt.excluded[k] for k in ("user_id", "sid", "kind", "p256dh", "auth", "label", "created_at")
        }
        stmt = stmt.on_conflict_do_update(index_elements=[d.c.endpoint], set_=moved).returning(*_DEVICE_COLS)
        async with self._tx() as conn:
            row = (await conn.execute(stmt)).one()
            # A device that changed hands forgets what was queued for its previous owner.
            await conn.execute(
                delete(t.push_outbox).where(
                    t.push_outbox.c.device_id == row.id, t.push_outbox.c.user_id != device.user_id
                )
            )
        return _device(row)

    @unavailable
    async def push_devices(self, user_id: int) -> list[PushDevice]:
        query = (
            select(*_DEVICE_COLS)
            .join(t.sessions, _LIVE)
            .where(t.push_devices.c.user_id == user_id)
            .order_by(t.push_devices.c.created_at.desc(), t.push_devices.c.id)
        )
        async with self.engine.connect() as conn:
            return [_device(row) for row in await conn.execute(query)]

    @unavailable
    async def push_device(self, device_id: str) -> PushDevice | None:
        query = select(*_DEVICE_COLS).join(t.sessions, _LIVE).where(t.push_devices.c.id == device_id)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _device(row) if row is not None else None

    @unavailable
    async def push_device_by_endpoint(self, endpoint: str) -> PushDevice | None:
        query = select(*_DEVICE_COLS).join(t.sessions, _LIVE).where(t.push_devices.c.endpoint == endpoint)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return _device(row) if row is not None else None

    @unavailable
    async def remove_push_device(self, device_id: str, user_id: int | None = None) -> bool:
        where = [t.push_devices.c.id == device_id]
        if user_id is not None:
            where.append(t.push_devices.c.user_id == user_id)
        async with self._tx() as conn:
            gone = (await conn.execute(delete(t.push_devices).where(*where))).rowcount
            if gone:
                await conn.execute(delete(t.push_outbox).where(t.push_outbox.c.device_id == device_id))
        return bool(gone)

    @unavailable
    async def purge_revoked_push_devices(self) -> int:
        ended = select(t.sessions.c.sid).where(t.sessions.c.revoked == True)  # noqa: E712
        async with self._tx() as conn:
            ids = list(
                (
                    await conn.execute(select(t.push_devices.c.id).where(t.push_devices.c.sid.in_(ended)))
                ).scalars()
            )
            if ids:
                await conn.execute(delete(t.push_outbox).where(t.push_outbox.c.device_id.in_(ids)))
                await conn.execute(delete(t.push_devices).where(t.push_devices.c.id.in_(ids)))
        return len(ids)

    # -- settings -----------------------------------------------------------------------------------
    @unavailable
    async def push_prefs(self, user_id: int) -> PushPrefs:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.push_prefs).where(t.push_prefs.c.user_id == user_id))).first()
        return _prefs(row)

    @unavailable
    async def set_push_prefs(self, user_id: int, prefs: PushPrefs) -> None:
        values: dict[str, Any] = {
            "preview": prefs.preview,
            "mentions_through_mute": prefs.mentions_through_mute,
            "hot_groups": prefs.hot_groups,
        }
        stmt = self._upsert(t.push_prefs).values(user_id=user_id, **values)
        stmt = stmt.on_conflict_do_update(index_elements=[t.push_prefs.c.user_id], set_=values)
        async with self._tx() as conn:
            await conn.execute(stmt)

    # -- the queue ----------------------------------------------------------------------------------
    @unavailable
    async def push_targets(self, user_ids: Sequence[int] = (), conv: str | None = None) -> list[PushTarget]:
        d, p, gm = t.push_devices, t.push_prefs, t.group_members
        group_id = parse_group(conv) if conv is not None else None
        if conv is not None:
            who = d.c.user_id.in_(select(t.conv_members.c.user_id).where(t.conv_members.c.conv == conv))
        elif user_ids:
            who = d.c.user_id.in_(bindparam("users", list(user_ids), expanding=True))
        else:
            return []
        query = (
            select(d.c.id, d.c.user_id, p.c.preview, p.c.mentions_through_mute, p.c.hot_groups, gm.c.dnd)
            .join(t.sessions, _LIVE)
            .outerjoin(p, p.c.user_id == d.c.user_id)
            .outerjoin(gm, and_(gm.c.group_id == (group_id or 0), gm.c.user_id == d.c.user_id))
            .where(who)
        )
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        return [PushTarget(row.id, row.user_id, _prefs(row), bool(row.dnd)) for row in rows]

    @unavailable
    async def queue_pushes(self, pushes: Sequence[NewPush], now: int, window_ms: int) -> int:
        merged: dict[tuple[str, str], tuple[NewPush, int, bool]] = {}
        for push in pushes:  # one row per (device, conv) and statement: keep the newest, add up the count
            key = (push.device_id, push.conv)
            seen = merged.get(key)
            if seen is None:
                merged[key] = (push, 1, push.mention)
            else:
                newest = push if push.seq > seen[0].seq else seen[0]
                merged[key] = (newest, seen[1] + 1, seen[2] or push.mention)
        o = t.push_outbox
        changed = 0
        rows = [
            {
                "device_id": p.device_id,
                "conv": p.conv,
                "user_id": p.user_id,
                "kind": "msg",
                "seq": p.seq,
                "count": n,
                "title": p.title[:160],
                "text": p.text[:256],
                "mention": mention,
                "due_at": now,
            }
            for p, n, mention in merged.values()
        ]
        pending = o.c.kind == "msg"
        after_window = o.c.last_sent_at + window_ms
        async with self._tx() as conn:
            for start in range(0, len(rows), _CHUNK):
                stmt = self._upsert(o).values(rows[start : start + _CHUNK])
                ex = stmt.excluded
                stmt = stmt.on_conflict_do_update(
                    index_elements=[o.c.device_id, o.c.conv],
                    set_={
                        "kind": "msg",
                        "seq": ex.seq,
                        "count": o.c.count + ex.count,
                        "title": ex.title,
                        "text": ex.text,
                        "mention": case((pending, o.c.mention | ex.mention), else_=ex.mention),
                        "due_at": case((pending, o.c.due_at), (after_window > now, after_window), else_=now),
                        "attempts": case((pending, o.c.attempts), else_=0),
                    },
                    where=and_(ex.seq > o.c.seq, ex.seq > o.c.sent_seq),
                )
                changed += (await conn.execute(stmt)).rowcount
        return changed

    @unavailable
    async def queue_clears(self, user_id: int, conv: str, read_seq: int, now: int) -> int:
        o = t.push_outbox
        mine = and_(o.c.user_id == user_id, o.c.conv == conv, o.c.seq <= read_seq, o.c.kind != "clear")
        # Most reads find nothing to clear: ask the readers first, so they cost no write transaction.
        async with self.engine.connect() as conn:
            found = (
                await conn.execute(
                    select(o.c.conv).where(mine, (o.c.shown > 0) | (o.c.kind == "msg")).limit(1)
                )
            ).first()
        if found is None:
            return 0
        async with self._tx() as conn:
            # Shown on the device: close it there. Only pending: it will not be shown at all.
            cleared = await conn.execute(
                update(o).where(mine, o.c.shown > 0).values(kind="clear", count=0, due_at=now, attempts=0)
            )
            await conn.execute(
                update(o).where(mine, o.c.shown == 0, o.c.kind == "msg").values(kind="", count=0)
            )
        return int(cleared.rowcount)

    @unavailable
    async def claim_pushes(self, node: str, now: int, lease_ms: int, limit: int) -> list[PushJob]:
        lease = f"{node}/{secrets.token_hex(6)}"
        o = t.push_outbox
        async with self._tx() as conn:
            rows = await leases.claim(
                conn,
                OUTBOX_LEASE,
                owner=lease,
                now=now,
                lease_ms=lease_ms,
                due=[o.c.kind.in_(("msg", "clear")), o.c.due_at <= now],
                order_by=[o.c.due_at],
                limit=limit,
                returning=[o.c[c] for c in _JOB_COLS],
            )
            if not rows:
                return []
            ids = list({row.device_id for row in rows})
            devices = {
                row.id: _device(row)
                for row in await conn.execute(select(*_DEVICE_COLS).where(t.push_devices.c.id.in_(ids)))
            }
            users = list({d.user_id for d in devices.values()})
            previews = {
                row.user_id: row.preview
                for row in await conn.execute(
                    select(t.push_prefs.c.user_id, t.push_prefs.c.preview).where(
                        t.push_prefs.c.user_id.in_(users)
                    )
                )
            }
        return [
            PushJob(
                device=devices[row.device_id],
                conv=row.conv,
                kind=row.kind,
                seq=row.seq,
                count=row._mapping["count"],
                title=row.title,
                text=row.text,
                mention=bool(row.mention),
                attempts=row.attempts,
                lease=lease,
                preview=previews.get(devices[row.device_id].user_id, "full"),
            )
            for row in rows
            if row.device_id in devices
        ]

    @unavailable
    async def finish_pushes(self, done: Sequence[Finished], now: int, window_ms: int = 0) -> int:
        ended, retried = [], []
        for item in done:
            job = item.job
            key = {"device": job.device.id, "conv": job.conv, "lease": job.lease}
            if item.retry_at is not None and not item.sent:
                retried.append({**key, "retry_at": item.retry_at})
            else:
                ended.append(
                    {
                        **key,
                        "sent": 1 if item.sent else 0,
                        "kind": job.kind,
                        "seq": job.seq,
                        "count": job.count,
                        "shown": 0 if job.kind == "clear" else job.count,
                        "now": now,
                        "later": now + window_ms,
                    }
                )
        changed = 0
        async with self._tx() as conn:
            for statement, rows in ((_END, ended), (_RETRY, retried)):
                if rows:  # one statement, many parameter sets: a claim's outcomes cost one round
                    result = await conn.execute(statement, rows[0] if len(rows) == 1 else rows)
                    changed += result.rowcount if result.rowcount >= 0 else len(rows)
            delivered = {item.job.device.id for item in done if item.sent}
            if delivered:
                await conn.execute(
                    update(t.push_devices).where(t.push_devices.c.id.in_(delivered)).values(last_ok_at=now)
                )
        return changed

    @unavailable
    async def notifications_of(self, device_id: str) -> list[PushJob]:
        o = t.push_outbox
        query = select(
            *_DEVICE_COLS, o.c.conv, o.c.kind, o.c.seq, o.c.count, o.c.title, o.c.text, o.c.mention
        )
        query = query.join(o, o.c.device_id == t.push_devices.c.id).join(t.sessions, _LIVE)
        query = query.where(t.push_devices.c.id == device_id, o.c.count > 0).order_by(o.c.seq.desc())
        async with self.engine.connect() as conn:
            rows = list(await conn.execute(query))
        return [
            PushJob(
                device=_device(row),
                conv=row.conv,
                kind="msg",
                seq=row.seq,
                count=row._mapping["count"],
                title=row.title,
                text=row.text,
                mention=bool(row.mention),
                attempts=0,
                lease="",
            )
            for row in rows
        ]
