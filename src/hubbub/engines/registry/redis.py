"""The cluster's connection registry in Redis (docs/cluster.md; keys in engines/redis_keys.py).

``P{u:<user>}`` is a hash, terminal -> ``node\\tconn_id\\texpires_ms``: which connection holds each of the
user's terminals. Each field carries its own expiry (renewed by its node every ``refresh_s``) and the whole
hash expires too, so the entries of a node that died vanish by themselves.

Atomicity: registering is one Lua script (``_REGISTER``: read the hash, write the slot, in one step), so of
two logins of one terminal at once, on any nodes, Redis decides which came last, and each reply names the
holder it displaced. Freeing (``_UNREGISTER``) and renewing (``_REFRESH``) compare the connection id inside
their script, so a late close or a renewal never clobbers a newer holder. Per-slot locks on this node make
its own record (``_local``, what it renews) follow Redis's order too.

Recovery: the registry keeps a copy of this node's registrations; when Redis comes back empty, the cluster's
recovery hook rewrites them (``refresh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError
from hubbub.core.periodic import Periodic
from hubbub.engines.cluster.base import Cluster
from hubbub.engines.redis_keys import Keys
from hubbub.engines.registry.base import Holder, LocalCloser, Registered, Registry
from hubbub.protocol.close_codes import Close

log = logging.getLogger(__name__)

# KEYS[1] user hash; ARGV: terminal, value, ttl seconds, now ms, cap (0: none). Returns the hash as it was
# before, and the (terminal, value) pairs evicted to keep the user within the cap: the live entries (not past
# their expiry) with the oldest activity (the value's 4th field), never the new one.
_REGISTER = """
local before = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
local cap = tonumber(ARGV[5])
local evicted = {}
if cap > 0 then
  local now = tonumber(ARGV[4])
  local others = {}
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do
    local exp, active = string.match(flat[i + 1], '^[^\\t]*\\t[^\\t]*\\t(%d+)\\t?(%d*)')
    if exp and tonumber(exp) >= now and flat[i] ~= ARGV[1] then
      table.insert(others, {flat[i], flat[i + 1], tonumber(active) or 0})
    end
  end
  table.sort(others, function(a, b) return a[3] < b[3] or (a[3] == b[3] and a[1] < b[1]) end)
  local excess = #others + 1 - cap
  for i = 1, excess do
    -- a tombstone, not a deletion: the evicted connection's node must not renew the slot back (_REFRESH)
    local conn = string.match(others[i][2], '^[^\\t]*\\t([^\\t]*)\\t')
    redis.call('HSET', KEYS[1], others[i][1], '~\\t' .. conn .. '\\t0\\t0')
    table.insert(evicted, others[i][1])
    table.insert(evicted, others[i][2])
  end
end
return {before, evicted}
"""

# KEYS[1] user hash; ARGV: terminal, conn id. Frees the slot only if conn id still holds it (an evicted
# connection's tombstone is removed, and nothing is reported freed).
_UNREGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
local node, conn = string.match(cur, '^([^\\t]*)\\t([^\\t]*)\\t%d+')
if conn ~= ARGV[2] then return false end
if node == '~' then
  redis.call('HDEL', KEYS[1], ARGV[1])  -- an evicted connection's tombstone: it held nothing any more
  return false
end
local before = redis.call('HGETALL', KEYS[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return before
"""

# KEYS[1] user hash; ARGV: now ms, ttl s, then (terminal, conn id, value) triples. Renews this node's
# entries unless another live connection took the slot, or the sessions cap evicted this one (a tombstone,
# node ``~``); returns the terminals that were taken, ``~``-prefixed for an eviction.
_REFRESH = """
local now = tonumber(ARGV[1])
local lost = {}
for i = 3, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local mine = true
  local evicted = false
  if cur then
    local node, conn, exp = string.match(cur, '^([^\\t]*)\\t([^\\t]*)\\t(%d+)')
    evicted = (node == '~') and (conn == ARGV[i + 1])
    mine = not evicted and ((conn == ARGV[i + 1]) or (tonumber(exp) < now))
  end
  if mine then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  elseif evicted then
    table.insert(lost, '~' .. ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return lost
"""


class _Entry(msgspec.Struct, frozen=True):
    node: str
    conn_id: str
    expires_ms: int


class _SlotLocks:
    """One lock per (user, terminal) with registrations in flight on this node, dropped when idle.

    Two logins of one terminal on this node at once: the register script runs atomically in Redis, but the
    replies can come back in either order over a connection pool, and ``_local`` must end up naming the
    connection Redis kept (the other is closed 4409), or the survivor's entry is never renewed and expires.
    """

    def __init__(self) -> None:
        self._locks: dict[tuple[int, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[int, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def _parse(value: bytes) -> _Entry | None:
    """``node\\tconn\\texpires[\\tactive]``: entries written before issue 15 have no activity field."""
    try:
        node, conn_id, expires, *_active = value.decode().split("\t")
        return _Entry(node, conn_id, int(expires))
    except ValueError:
        return None


def _pairs(flat: Sequence[bytes]) -> dict[str, bytes]:
    return {flat[i].decode(): flat[i + 1] for i in range(0, len(flat), 2)}


class RedisRegistry(Registry):
    def __init__(
        self,
        client: aioredis.Redis,
        node_id: str,
        cluster: Cluster,
        *,
        keys: Keys | None = None,
        refresh_s: float = 10.0,
        alive_ttl_s: float = 6.0,
    ) -> None:
        self.node_id = node_id
        self.redis = client
        self.cluster = cluster
        self.keys = keys or Keys()
        self.refresh_s = refresh_s
        #: A registry entry lives this long without renewal (its node died).
        self.entry_ttl_s = max(3 * refresh_s, 2 * alive_ttl_s)
        self._register = self.redis.register_script(_REGISTER)
        self._unregister = self.redis.register_script(_UNREGISTER)
        self._refresh = self.redis.register_script(_REFRESH)
        self._closer: LocalCloser | None = None
        #: This node's own registrations: user -> terminal -> conn id. Rewritten to Redis after it lost them.
        self._local: dict[int, dict[str, str]] = {}
        #: When each local connection was last active (ms), carried to Redis by the renewal.
        self._active: dict[str, int] = {}
        self._slot_locks = _SlotLocks()
        self._renewal = Periodic(
            f"registry-renewal-{node_id}", refresh_s, self.refresh, jitter=0.1, quiet=(RedisError, OSError)
        )

    def _value(self, conn_id: str, now: int) -> str:
        active = self._active.get(conn_id, now)
        return f"{self.node_id}\t{conn_id}\t{now + int(self.entry_ttl_s * 1000)}\t{active}"

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, closer: LocalCloser) -> None:
        self._closer = closer
        self.cluster.on_recover(self.refresh)
        self._renewal.start()

    async def halt(self) -> None:
        """Stop renewing, as a node that died would (close calls it; tests call it alone)."""
        await self._renewal.stop()

    async def close(self) -> None:
        await self.halt()
        with contextlib.suppress(RedisError, OSError):
            for user_id, slots in list(self._local.items()):
                for terminal, conn_id in list(slots.items()):
                    await self._unregister(keys=[self.keys.user(user_id)], args=[terminal, conn_id])
        self._local.clear()
        self._active.clear()

    # -- slots ------------------------------------------------------------------------------------
    async def register(self, user_id: int, terminal: str, conn_id: str, *, cap: int = 0) -> Registered:
        now = now_ms()
        self._active[conn_id] = now
        async with self._slot_locks.hold((user_id, terminal)):
            try:
                raw, evicted_raw = await self._register(
                    keys=[self.keys.user(user_id)],
                    args=[terminal, self._value(conn_id, now), int(self.entry_ttl_s), now, cap],
                )
            except RedisError as exc:
                raise HubbubError(Code.UNAVAILABLE, "the connection registry is unavailable") from exc
            self._local.setdefault(user_id, {})[terminal] = conn_id
            evicted = [(t, _parse(v)) for t, v in _pairs(evicted_raw).items()]
            self._forget_local(user_id, [(t, e.conn_id) for t, e in evicted if e is not None])
        before_all = {t: _parse(v) for t, v in _pairs(raw).items()}
        live = await self._live_terminals(before_all, now)
        previous = before_all.get(terminal)
        replaced = None
        if previous is not None and previous.conn_id != conn_id and terminal in live:
            replaced = Holder(previous.node, previous.conn_id)
        gone = {t for t, _ in evicted}
        return Registered(
            before=tuple(sorted(live)),
            after=tuple(sorted({*live, terminal} - gone)),
            replaced=replaced,
            evicted=tuple(Holder(e.node, e.conn_id) for _, e in evicted if e is not None),
        )

    def _forget_local(self, user_id: int, slots: Sequence[tuple[str, str]]) -> None:
        """Drop this node's record of connections another registration evicted, so no renewal revives them."""
        mine = self._local.get(user_id)
        for terminal, conn_id in slots:
            if mine is not None and mine.get(terminal) == conn_id:
                del mine[terminal]
                self._active.pop(conn_id, None)
        if mine is not None and not mine:
            del self._local[user_id]

    async def touch(self, user_id: int, terminal: str, conn_id: str) -> None:
        """Local only: the renewal (every ``refresh_s``) carries it to Redis, so activity costs no round trip."""
        if self._local.get(user_id, {}).get(terminal) == conn_id:
            self._active[conn_id] = now_ms()

    async def unregister(self, user_id: int, terminal: str, conn_id: str) -> Registered | None:
        slots = self._local.get(user_id)
        if slots is not None and slots.get(terminal) == conn_id:
            del slots[terminal]
            self._active.pop(conn_id, None)
            if not slots:
                del self._local[user_id]
        try:
            raw = await self._unregister(keys=[self.keys.user(user_id)], args=[terminal, conn_id])
        except RedisError:
            log.warning("registry unavailable; %s's entry for %s will expire", conn_id, terminal)
            return None
        if raw is None:
            return None
        before_all = {t: _parse(v) for t, v in _pairs(raw).items()}
        live = await self._live_terminals(before_all, now_ms())
        live.add(terminal)
        return Registered(before=tuple(sorted(live)), after=tuple(sorted(live - {terminal})))

    async def refresh(self) -> None:
        """Renew every local registration (the registry does this itself every ``refresh_s``).

        A slot that another live connection took meanwhile (a replacement whose close was lost) is not
        overwritten: the local connection is closed as replaced.
        """
        if not self._local:
            return
        now = now_ms()
        users = list(self._local.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, slots in users:
                args: list[Any] = [now, int(self.entry_ttl_s)]
                for terminal, conn_id in slots.items():
                    args += [terminal, conn_id, self._value(conn_id, now)]
                await self._refresh(keys=[self.keys.user(user_id)], args=args, client=pipe)
            replies = await pipe.execute()
        for (user_id, slots), lost in zip(users, replies, strict=True):
            for raw in lost or ():
                terminal = raw.decode()
                evicted = terminal.startswith("~")
                terminal = terminal.removeprefix("~")
                if terminal in slots and self._closer is not None:
                    lost_conn = slots.pop(terminal)
                    self._active.pop(lost_conn, None)
                    code, why = (
                        (Close.EVICTED, "signed in on too many devices")
                        if evicted
                        else (Close.REPLACED, "replaced by a newer login")
                    )
                    self._closer.disconnect(user_id, code, why, lost_conn, None)
            if not slots:
                self._local.pop(user_id, None)

    # -- lookups ----------------------------------------------------------------------------------
    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not user_ids:
            return {}
        try:
            entries = await self._entries(user_ids)
        except RedisError as exc:
            log.warning("presence from this node only (Redis: %s)", exc)
            return {u: tuple(sorted(self._local[u])) for u in user_ids if self._local.get(u)}
        now = now_ms()
        result: dict[int, tuple[str, ...]] = {}
        for user_id, slots in entries.items():
            live = await self._live_terminals(slots, now)
            if live:
                result[user_id] = tuple(sorted(live))
        return result

    async def locate(
        self, user_ids: Sequence[int], *, conn_id: str | None = None, stale: bool = False
    ) -> dict[int, set[str]]:
        now = now_ms()
        found: dict[int, set[str]] = {}
        for user_id, slots in (await self._entries(user_ids)).items():
            nodes = {
                e.node
                for e in slots.values()
                if e is not None
                and (stale or e.expires_ms > now)
                and (conn_id is None or e.conn_id == conn_id)
            }
            if nodes:
                found[user_id] = nodes
        return found

    async def _entries(self, user_ids: Sequence[int]) -> dict[int, dict[str, _Entry | None]]:
        """Every registry entry of the given users, in one round trip."""
        unique = list(dict.fromkeys(user_ids))
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id in unique:
                pipe.hgetall(self.keys.user(user_id))
            replies = await pipe.execute()
        return {
            user_id: {k.decode(): _parse(v) for k, v in reply.items()}
            for user_id, reply in zip(unique, replies, strict=True)
            if reply
        }

    async def _live_terminals(self, slots: dict[str, _Entry | None], now: int) -> set[str]:
        live = set()
        for terminal, entry in slots.items():
            if entry is not None and entry.expires_ms > now and await self.cluster.is_alive(entry.node):
                live.add(terminal)
        return live
