"""The cluster's connection registry in Redis (docs/cluster.md; keys in engines/redis_keys.py).

``P{u:<user>}`` is a hash, slot -> ``node\\tconn_id\\tincarnation\\tactive``: which connection holds each of the
user's slots (a terminal class, or a device: ``registry.base.slot_of``), which process of its node
(``Cluster.incarnation_of``), and when that connection was last active (ms), for the sessions cap.

Upkeep does not grow with online users: an entry is live while its node's lease (the liveness key, renewed
every 2 s by the cluster engine, one command per node) names the entry's incarnation, so nothing per user is
renewed. A node that dies (or restarts under the same id: a new incarnation) takes its users offline within
the lease's TTL. What it leaves in Redis is swept: each node notes its users in ``P{node:<id>}:users:<inc>``
and its incarnation in ``P{nodes}:holders``; every ``sweep_s`` each node checks the holders (one lookup per
node, cached) and purges the entries of dead ones (``_PURGE``, which deletes only fields still naming that
node and incarnation).

Atomicity: registering is one Lua script (``_REGISTER``: read the hash, write the slot, in one step), so of
two logins of one terminal at once, on any nodes, Redis decides which came last, and each reply names the
holder it displaced. Freeing (``_UNREGISTER``) and rewriting (``_REFRESH``) compare the connection id inside
their script, so a late close or a rewrite never clobbers a newer holder. Per-slot locks on this node make
its own record (``_local``) follow Redis's order too.

Sessions cap (issue 15): ``_REGISTER`` also frees the least recently active slots beyond ``cap``, in the same
atomic step, leaving a tombstone (node ``~``) so that a recovery rewrite by the evicted connection's node cannot
bring it back. Activity reaches Redis at registration and then at most once per ``TOUCH_EVERY_MS`` per
connection that sends frames: ``touch`` (every frame) only writes a dict, and each sweep round first writes the
activity that is due, in one pipeline (``flush_activity``): a cost of the active users, never of the idle
ones, and never a round trip on a frame's way in. Entries of a dead process still count toward the cap until
the sweep removes them (at most ``sweep_s``).

Recovery: the registry keeps a copy of this node's registrations; when Redis lost this node's state (it came
back empty, or this node stalled past its lease and was swept), the cluster's recovery hook rewrites them
(``refresh``), closing any local connection whose slot another connection took meanwhile.
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

# KEYS[1] user hash; ARGV: slot, value, cap (0: none). Returns the hash as it was before, and the (slot, value)
# pairs evicted to keep the user within the cap: the other entries with the oldest activity (the value's 4th
# field), never the new one; each is replaced by a tombstone ``~\tconn\t\t0``.
_REGISTER = """
local before = redis.call('HGETALL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local cap = tonumber(ARGV[3])
local evicted = {}
if cap > 0 then
  local others = {}
  local flat = redis.call('HGETALL', KEYS[1])
  for i = 1, #flat, 2 do
    local node, active = string.match(flat[i + 1], '^([^\\t]*)\\t[^\\t]*\\t[^\\t]*\\t?(%d*)')
    if node and node ~= '~' and flat[i] ~= ARGV[1] then
      table.insert(others, {flat[i], flat[i + 1], tonumber(active) or 0})
    end
  end
  table.sort(others, function(a, b) return a[3] < b[3] or (a[3] == b[3] and a[1] < b[1]) end)
  for i = 1, #others + 1 - cap do
    local conn = string.match(others[i][2], '^[^\\t]*\\t([^\\t]*)')
    redis.call('HSET', KEYS[1], others[i][1], '~\\t' .. conn .. '\\t\\t0')
    table.insert(evicted, others[i][1])
    table.insert(evicted, others[i][2])
  end
end
return {before, evicted}
"""

# KEYS[1] user hash; ARGV: slot, conn id. Frees the slot only if conn id still holds it (an evicted
# connection's tombstone is removed, and nothing is reported freed).
_UNREGISTER = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return false end
local node, conn = string.match(cur, '^([^\\t]*)\\t([^\\t]*)')
if conn ~= ARGV[2] then return false end
if node == '~' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return false
end
local before = redis.call('HGETALL', KEYS[1])
redis.call('HDEL', KEYS[1], ARGV[1])
return before
"""

# KEYS[1] user hash; ARGV: (slot, conn id, value) triples. Rewrites this node's entries unless another
# connection took the slot meanwhile, or the sessions cap evicted this one (a tombstone); returns the slots
# that were taken, ``~``-prefixed for an eviction.
_REFRESH = """
local lost = {}
for i = 1, #ARGV, 3 do
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local mine = true
  local evicted = false
  if cur then
    local node, conn = string.match(cur, '^([^\\t]*)\\t([^\\t]*)')
    evicted = (node == '~') and (conn == ARGV[i + 1])
    mine = (not evicted) and (conn == ARGV[i + 1])
  end
  if mine then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 2])
  elseif evicted then
    table.insert(lost, '~' .. ARGV[i])
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
"""

# KEYS[1] user hash; ARGV: slot, conn id, value. Records activity if that connection still holds the slot.
_TOUCH = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return 0 end
local node, conn = string.match(cur, '^([^\\t]*)\\t([^\\t]*)')
if node == '~' or conn ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS[1] user hash; ARGV: node, incarnation. Deletes the fields a dead process of that node left.
_PURGE = """
local flat = redis.call('HGETALL', KEYS[1])
local n = 0
for i = 1, #flat, 2 do
  local node, inc = string.match(flat[i + 1], '^([^\\t]*)\\t[^\\t]*\\t([^\\t]*)')
  if node == ARGV[1] and inc == ARGV[2] then
    redis.call('HDEL', KEYS[1], flat[i])
    n = n + 1
  end
end
return n
"""

#: Users purged per round trip when sweeping a dead node's entries.
_SWEEP_BATCH = 500
#: A connection's activity is written to Redis at most this often (ms): enough to pick the idlest session.
TOUCH_EVERY_MS = 60_000


class _Entry(msgspec.Struct, frozen=True):
    node: str
    conn_id: str
    incarnation: str


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
    """``node\\tconn\\tincarnation[\\tactive]`` (a tombstone's node is ``~``)."""
    try:
        node, conn_id, incarnation, *_active = value.decode().split("\t")
        return _Entry(node, conn_id, incarnation)
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
        sweep_s: float = 10.0,
    ) -> None:
        self.node_id = node_id
        self.redis = client
        self.cluster = cluster
        self.keys = keys or Keys()
        self.sweep_s = sweep_s
        self._register = self.redis.register_script(_REGISTER)
        self._unregister = self.redis.register_script(_UNREGISTER)
        self._closer: LocalCloser | None = None
        #: This node's own registrations: user -> terminal -> conn id. Rewritten to Redis after it lost them.
        self._local: dict[int, dict[str, str]] = {}
        #: Each local connection's last activity, and when that was last written to Redis (ms).
        self._active: dict[str, tuple[int, int]] = {}
        #: Connections whose activity is due for Redis: conn id -> (user, slot), for ``flush_activity``.
        self._due: dict[str, tuple[int, str]] = {}
        self._slot_locks = _SlotLocks()
        self._sweeper = Periodic(
            f"registry-sweep-{node_id}", sweep_s, self._upkeep, jitter=0.1, quiet=(RedisError, OSError)
        )
        #: Dead processes whose entries this node purged, for tests.
        self.swept = 0

    @property
    def incarnation(self) -> str:
        return self.cluster.incarnation

    def _value(self, conn_id: str) -> str:
        active = self._active.get(conn_id, (0, 0))[0]
        return f"{self.node_id}\t{conn_id}\t{self.incarnation}\t{active}"

    def _users_key(self) -> str:
        return self.keys.node_users(self.node_id, self.incarnation)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self, closer: LocalCloser) -> None:
        self._closer = closer
        self.cluster.on_recover(self.refresh)
        await self._note_holder()
        self._sweeper.start()

    async def _note_holder(self) -> None:
        await self.redis.sadd(self.keys.holders(), f"{self.node_id}\t{self.incarnation}")

    async def halt(self) -> None:
        """Stop sweeping, as a node that died would (close calls it; tests call it alone)."""
        await self._sweeper.stop()

    async def close(self) -> None:
        await self.halt()
        with contextlib.suppress(RedisError, OSError):
            for user_id, slots in list(self._local.items()):
                for terminal, conn_id in list(slots.items()):
                    await self._unregister(keys=[self.keys.user(user_id)], args=[terminal, conn_id])
            await self.redis.delete(self._users_key())
            await self.redis.srem(self.keys.holders(), f"{self.node_id}\t{self.incarnation}")
        self._local.clear()
        self._active.clear()
        self._due.clear()

    # -- slots ------------------------------------------------------------------------------------
    async def register(self, user_id: int, terminal: str, conn_id: str, *, cap: int = 0) -> Registered:
        now = now_ms()
        self._active[conn_id] = (now, now)
        async with self._slot_locks.hold((user_id, terminal)):
            try:
                raw, evicted_raw = await self._register(
                    keys=[self.keys.user(user_id)], args=[terminal, self._value(conn_id), cap]
                )
            except RedisError as exc:
                self._active.pop(conn_id, None)
                raise HubbubError(Code.UNAVAILABLE, "the connection registry is unavailable") from exc
            known = user_id in self._local
            self._local.setdefault(user_id, {})[terminal] = conn_id
            evicted = [(t, e) for t, v in _pairs(evicted_raw).items() if (e := _parse(v)) is not None]
            self._forget_local(user_id, [(t, e.conn_id) for t, e in evicted])
        if not known:  # for the sweep, should this process die: best effort, a miss only leaves garbage
            with contextlib.suppress(RedisError):
                await self.redis.sadd(self._users_key(), user_id)
        before_all = {t: _parse(v) for t, v in _pairs(raw).items()}
        live = await self._live_terminals(before_all)
        previous = before_all.get(terminal)
        replaced = None
        if previous is not None and previous.conn_id != conn_id and terminal in live:
            replaced = Holder(previous.node, previous.conn_id)
        return Registered(
            before=tuple(sorted(live)),
            after=tuple(sorted({*live, terminal} - {t for t, _ in evicted})),
            replaced=replaced,
            evicted=tuple(Holder(e.node, e.conn_id) for _, e in evicted),
        )

    def _forget_local(self, user_id: int, slots: Sequence[tuple[str, str]]) -> None:
        """Drop this node's record of connections a registration evicted, so no rewrite revives them."""
        mine = self._local.get(user_id)
        for terminal, conn_id in slots:
            if mine is not None and mine.get(terminal) == conn_id:
                del mine[terminal]
                self._active.pop(conn_id, None)
        if mine is not None and not mine:
            del self._local[user_id]

    def touch(self, user_id: int, terminal: str, conn_id: str) -> None:
        """A dict write: the activity is due for Redis once ``TOUCH_EVERY_MS`` passed since it was last
        written, and the next ``flush_activity`` (each sweep round) writes what is due."""
        known = self._active.get(conn_id)
        if known is None:
            return
        now = now_ms()
        self._active[conn_id] = (now, known[1])  # a recovery rewrite carries it
        if now - known[1] >= TOUCH_EVERY_MS:
            self._due[conn_id] = (user_id, terminal)

    async def flush_activity(self) -> None:
        """Write the activity that is due, one pipelined script call per connection (a cost of the users who
        send frames, at most once a minute each, never of the idle ones). A connection that lost its slot
        meanwhile is skipped (the script also refuses to write over another holder or a tombstone)."""
        due, self._due = self._due, {}
        writes = []
        for conn_id, (user_id, terminal) in due.items():
            known = self._active.get(conn_id)
            if known is not None and self._local.get(user_id, {}).get(terminal) == conn_id:
                self._active[conn_id] = (known[0], known[0])
                writes.append((user_id, terminal, conn_id))
        if not writes:
            return
        with contextlib.suppress(RedisError, OSError):  # activity is a hint for the cap, never worth an error
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id, terminal, conn_id in writes:
                    pipe.eval(_TOUCH, 1, self.keys.user(user_id), terminal, conn_id, self._value(conn_id))
                await pipe.execute()

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
            log.warning("registry unavailable; %s's entry for %s stays until the sweep", conn_id, terminal)
            return None
        if raw is None:
            return None
        before_all = {t: _parse(v) for t, v in _pairs(raw).items()}
        live = await self._live_terminals(before_all)
        live.add(terminal)
        return Registered(before=tuple(sorted(live)), after=tuple(sorted(live - {terminal})))

    async def refresh(self) -> None:
        """Rewrite every local registration: the recovery hook, when Redis lost this node's state (one
        command per local user, only then; nothing is renewed per user in normal running).

        A slot that another connection took meanwhile (a replacement whose close was lost with Redis's
        state) is not overwritten: the local connection is closed as replaced.
        """
        await self._note_holder()
        if not self._local:
            return
        users = list(self._local.items())
        async with self.redis.pipeline(transaction=False) as pipe:
            for user_id, slots in users:
                args: list[Any] = []
                for terminal, conn_id in slots.items():
                    args += [terminal, conn_id, self._value(conn_id)]
                pipe.eval(_REFRESH, 1, self.keys.user(user_id), *args)
            pipe.sadd(self._users_key(), *(user_id for user_id, _ in users))
            replies = await pipe.execute()
        for (user_id, slots), lost in zip(users, replies, strict=False):
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

    async def _upkeep(self) -> None:
        try:
            await self.flush_activity()
        finally:  # activity is a hint; the dead-node sweep must run whatever became of it
            await self.sweep()

    async def sweep(self) -> None:
        """Purge the entries of every dead process that held some: one lookup per node, not per user."""
        members: set[Any] = await self.redis.smembers(self.keys.holders())
        for member in members:
            holder = member.decode() if isinstance(member, bytes) else str(member)
            node, _, incarnation = holder.partition("\t")
            if await self.cluster.incarnation_of(node) == incarnation:
                continue
            users_key = self.keys.node_users(node, incarnation)
            while batch := await self.redis.spop(users_key, _SWEEP_BATCH):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for raw in batch:
                        pipe.eval(_PURGE, 1, self.keys.user(int(raw)), node, incarnation)
                    await pipe.execute()
            await self.redis.srem(self.keys.holders(), holder)
            self.swept += 1

    # -- lookups ----------------------------------------------------------------------------------
    async def presence(self, user_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        if not user_ids:
            return {}
        try:
            entries = await self._entries(user_ids)
        except RedisError as exc:
            log.warning("presence from this node only (Redis: %s)", exc)
            return {u: tuple(sorted(self._local[u])) for u in user_ids if self._local.get(u)}
        result: dict[int, tuple[str, ...]] = {}
        for user_id, slots in entries.items():
            live = await self._live_terminals(slots)
            if live:
                result[user_id] = tuple(sorted(live))
        return result

    async def locate(
        self, user_ids: Sequence[int], *, conn_id: str | None = None, stale: bool = False
    ) -> dict[int, set[str]]:
        found: dict[int, set[str]] = {}
        for user_id, slots in (await self._entries(user_ids)).items():
            nodes = {
                e.node
                for e in slots.values()
                if e is not None
                and (conn_id is None or e.conn_id == conn_id)
                and (stale or await self._is_live(e))
            }
            if nodes:
                found[user_id] = nodes
        return found

    async def _entries(self, user_ids: Sequence[int]) -> dict[int, dict[str, _Entry | None]]:
        """Every registry entry of the given users, in one round trip."""
        unique = list(dict.fromkeys(user_ids))
        replies: list[Any]
        if len(unique) == 1:  # a 1:1 batch of one message: one command costs less than a pipeline of one
            replies = [await self.redis.hgetall(self.keys.user(unique[0]))]
        else:
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in unique:
                    pipe.hgetall(self.keys.user(user_id))
                replies = await pipe.execute()
        return {
            user_id: {k.decode(): _parse(v) for k, v in reply.items()}
            for user_id, reply in zip(unique, replies, strict=True)
            if reply
        }

    async def _is_live(self, entry: _Entry) -> bool:
        """Held by a process whose lease is current (a cached lookup per node, none for this one)."""
        if entry.node == "~":  # an evicted connection's tombstone
            return False
        if entry.node == self.node_id:
            return entry.incarnation == self.incarnation
        return await self.cluster.incarnation_of(entry.node) == entry.incarnation

    async def _live_terminals(self, slots: dict[str, _Entry | None]) -> set[str]:
        return {t for t, entry in slots.items() if entry is not None and await self._is_live(entry)}
