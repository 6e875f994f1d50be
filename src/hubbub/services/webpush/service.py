"""When to push, and the worker that sends the stored queue (docs/architecture.md, "Web Push").

**When.** After a batch of messages is stored, each recipient who does not *attend* (no online terminal that
is in the foreground: the registry's presence less the terminals that reported ``visibility: background``)
is pushed on each of their devices, unless a rule holds it back:
- the sender is never pushed their own message; recall notices push nothing;
- a group set to do-not-disturb pushes only @mentions and @all, and those only while the user lets mentions
  through (``mentions_through_mute``, on by default);
- a hot group pushes only mentions, unless the user asked for all (``hot_groups: all``).

**Coalescing and idempotency** are the queue's (engines/storage/base_push.py): one row per device and
conversation, at most one push per ``push_window_s``, never a seq twice. A read on any terminal turns the
conversation's row into a ``clear``.

**Sending.** Every node runs the worker; a claim leases rows to one node (``engines/storage/leases.py``), so
each push is sent by one node. The worker wakes on work, not on a clock: at once when this node queues a push
or a clear, when a retry or a coalescing window its own send set falls due, and every ``push_poll_s`` as a
safety net (``_send_loop``). 2xx: done. 404/410: the device is deleted. 429, 5xx or no answer: retried with
exponential backoff (or the ``Retry-After`` given), up to ``push_max_attempts``. Anything else: dropped and
logged.
A node that dies holding a lease loses it after ``_LEASE_MS``; another node then sends those rows again (the
notification's tag makes a repeat replace, not add).

**Loss.** Planning runs after the batch is acknowledged, from memory: a node that dies in between loses those
pushes (never the messages: sync is the truth). Once queued, a push survives restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from hubbub.config import Config
from hubbub.core.alarm import Alarm
from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group, peer_of, private_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.searchtext import searchable_text
from hubbub.engines.attention.base import Attention
from hubbub.engines.registry.base import Registry
from hubbub.engines.storage.base import NewMessage, Storage, Stored
from hubbub.engines.storage.base_push import Finished, NewPush, PushDevice, PushJob, PushPrefs, PushTarget
from hubbub.services.webpush import payloads
from hubbub.services.webpush.keys import VapidKeys
from hubbub.services.webpush.senders import Outcome, PushSender

log = logging.getLogger(__name__)

#: A claim's lease: longer than any send (10 s timeout), short enough that a dead node's rows move soon.
_LEASE_MS = 60_000
#: Rows claimed at once, and pushes in flight at once per node.
_CLAIM = 256
#: Messages waiting to be planned; past this a burst's notifications are dropped (never the messages).
_MAX_PLANNED = 50_000
#: How long the planner lets stored messages gather before it plans them (s). Planning costs a few queries per
#: batch whatever its size; without the wait, at a low rate every message was a batch of its own and its
#: device lookup cost more than storing it. A notification 50 ms later is not noticed.
_PLAN_GATHER_S = 0.05
_PLAN_BATCH = 512
#: How often ended sessions' devices are deleted (ms).
_PURGE_MS = 60_000
#: Background marks lapse after this many heartbeats without renewal.
_MARK_HEARTBEATS = 3
#: Messages that never push: recall notices, and group system messages ("X joined").
_SILENT_TYPES = frozenset({"recall", "system"})


class Subscription(msgspec.Struct, kw_only=True):
    """What ``PushManager.subscribe()`` returned (its ``toJSON()``), or an FCM token."""

    endpoint: str
    keys: dict[str, str] = {}
    kind: str = "webpush"
    label: str = ""


class WebPushService:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        registry: Registry,
        attention: Attention,
        keys: VapidKeys,
        senders: dict[str, PushSender],
        node_id: str,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.config = config
        self.storage = storage
        self.registry = registry
        self.attention = attention
        self.keys = keys
        self.senders = senders
        self.node_id = node_id
        self.clock = clock
        self.window_ms = int(config.push_window_s * 1000)
        self._mark_ms = int(config.heartbeat_s * 1000 * _MARK_HEARTBEATS)
        #: This node's connections in the background: conn id -> (user, terminal, last renewal ms).
        self._background: dict[str, tuple[int, str, int]] = {}
        self._planned: list[tuple[NewMessage, Stored]] = []
        self._plan_wake = asyncio.Event()
        #: Rung when this node queues or reads; due when a row its sends put off falls due; polls otherwise.
        self._alarm = Alarm(config.push_poll_s, clock)
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._purged_at = 0
        #: Figures for the benchmark and /metrics.
        self.sent = 0
        self.failed = 0
        self.dropped_plans = 0

    # -- devices and settings (REST) -----------------------------------------------------------------
    async def subscribe(self, user_id: int, sid: str, sub: Subscription) -> PushDevice:
        if sub.kind not in self.senders:
            raise invalid("kind", f"one of {', '.join(sorted(self.senders))}")
        if sub.kind == "webpush":
            if not sub.endpoint.startswith("https://") and not self.config.push_allow_http:
                raise invalid("endpoint", "an https:// URL of a push service")
            p256dh, auth = sub.keys.get("p256dh", ""), sub.keys.get("auth", "")
            if not _valid_key(p256dh, 65) or not _valid_key(auth, 16):
                raise invalid("keys", "p256dh (a P-256 public key) and auth (16 bytes), base64url")
        else:
            p256dh = auth = ""
        if not 1 <= len(sub.endpoint) <= 1024:
            raise invalid("endpoint", "1 to 1024 characters")
        device = PushDevice(
            id=secrets.token_urlsafe(18),
            user_id=user_id,
            sid=sid,
            kind=sub.kind,
            endpoint=sub.endpoint,
            p256dh=p256dh,
            auth=auth,
            label=sub.label[:128],
            created_at=self.clock(),
        )
        return await self.storage.add_push_device(device)

    async def devices(self, user_id: int) -> list[PushDevice]:
        return await self.storage.push_devices(user_id)

    async def unsubscribe(self, user_id: int, device_id: str) -> None:
        if not await self.storage.remove_push_device(device_id, user_id):
            raise not_found("device")

    async def prefs(self, user_id: int) -> PushPrefs:
        return await self.storage.push_prefs(user_id)

    async def set_prefs(self, user_id: int, prefs: PushPrefs) -> PushPrefs:
        await self.storage.set_push_prefs(user_id, prefs)
        return prefs

    async def wake(self, endpoint: str) -> list[PushJob]:
        """What a device's notifications say now, for its service worker after a wake-up push (preview
        ``none``): the endpoint, a secret only the browser and this server know, identifies the device."""
        for device in await self._device_by_endpoint(endpoint):
            return await self.storage.notifications_of(device.id)
        raise HubbubError(Code.NOT_FOUND, "no such subscription")

    async def _device_by_endpoint(self, endpoint: str) -> list[PushDevice]:
        found = await self.storage.push_device_by_endpoint(endpoint)
        return [found] if found is not None else []

    # -- visibility (WebSocket) ----------------------------------------------------------------------
    async def visibility(self, user_id: int, terminal: str, conn_id: str, background: bool) -> None:
        if background:
            self._background[conn_id] = (user_id, terminal, self.clock())
        elif self._background.pop(conn_id, None) is None:
            return  # it was never in the background: nothing to undo
        await self.attention.set_background(user_id, terminal, background, self._mark_ms)

    def heartbeat(self, conn_id: str) -> None:
        """A ping on a connection: renew its background mark when a third of its life has passed."""
        held = self._background.get(conn_id)
        if held is None or self.clock() - held[2] < self._mark_ms // 3:
            return
        user_id, terminal, _ = held
        self._background[conn_id] = (user_id, terminal, self.clock())
        self._spawn(self.attention.set_background(user_id, terminal, True, self._mark_ms))

    async def disconnected(self, conn_id: str) -> None:
        held = self._background.pop(conn_id, None)
        if held is not None:
            await self.attention.set_background(held[0], held[1], False, 0)

    # -- planning ------------------------------------------------------------------------------------
    def stored(self, items: Sequence[tuple[NewMessage, Stored]]) -> None:
        """A batch was stored and published (MessageService): plan its pushes, off the send path."""
        if not self.config.push_enabled:
            return
        for item in items:
            if len(self._planned) >= _MAX_PLANNED:
                self.dropped_plans += 1
                continue
            if item[0].type not in _SILENT_TYPES:
                self._planned.append(item)
        self._plan_wake.set()

    async def read(self, user_id: int, conv: str, read_seq: int) -> None:
        """The user read ``conv`` on some terminal: close its notification on their devices."""
        if self.config.push_enabled and await self.storage.queue_clears(
            user_id, conv, read_seq, self.clock()
        ):
            self._alarm.ring()

    async def plan(self, items: Sequence[tuple[NewMessage, Stored]]) -> int:
        """Queue the pushes of stored messages; how many rows changed. A batch costs a fixed handful of
        round trips whatever its size: one device lookup for every private peer in it and one per group, one
        presence and one attention lookup for every candidate, one upsert."""
        items = [(item, stored) for item, stored in items if item.type not in _SILENT_TYPES]
        if not items:
            return 0
        peers = {peer_of(item.conv, item.sender) for item, _ in items if parse_group(item.conv) is None}
        by_user: dict[int, list[PushTarget]] = {}
        for target in await self.storage.push_targets([p for p in peers if p is not None]):
            by_user.setdefault(target.user_id, []).append(target)
        by_conv: dict[str, list[PushTarget]] = {}
        for conv in {item.conv for item, _ in items if parse_group(item.conv) is not None}:
            by_conv[conv] = await self.storage.push_targets(conv=conv)
        candidates: list[tuple[NewMessage, Stored, list[PushTarget]]] = []
        for item, stored in items:
            if item.conv in by_conv:
                targets = by_conv[item.conv]
            else:
                peer = peer_of(item.conv, item.sender)
                targets = by_user.get(peer, []) if peer is not None else []
            kept = _admitted(item, stored, targets)
            if kept:
                candidates.append((item, stored, kept))
        if not candidates:
            return 0
        attending = await self._attending({t.user_id for _, _, kept in candidates for t in kept})
        names = {
            uid: user.nickname
            for uid, user in (await self.storage.users(list({i.sender for i, _ in items}))).items()
        }
        groups: dict[int, str] = {}
        pushes: list[NewPush] = []
        for item, stored, kept in candidates:
            title = names.get(item.sender, "")
            group_id = parse_group(item.conv)
            if group_id is not None:
                if group_id not in groups:
                    group = await self.storage.group(group_id)
                    groups[group_id] = group.name if group is not None else ""
                title = f"{title} ({groups[group_id]})" if groups[group_id] else title
            message = stored.message
            text = searchable_text(message.type, message.body) or f"[{message.type}]"
            mentioned = set(item.mentions)
            for target in kept:
                if target.user_id in attending:
                    continue
                mention = item.mention_all or target.user_id in mentioned
                pushes.append(
                    NewPush(
                        target.device_id,
                        target.user_id,
                        message.conv,
                        message.seq,
                        message.sender,
                        title,
                        text,
                        mention,
                    )
                )
        if not pushes:
            return 0
        changed = await self.storage.queue_pushes(pushes, self.clock(), self.window_ms)
        if changed:
            self._alarm.ring()
        return changed

    async def _attending(self, users: set[int]) -> set[int]:
        """Users with an online terminal that is not in the background (on any node)."""
        if not users:
            return set()
        ids = list(users)
        online = await self.registry.presence(ids)
        if not online:
            return set()
        away = await self.attention.background(list(online), self.clock())
        return {uid for uid, terminals in online.items() if set(terminals) - away.get(uid, set())}

    # -- calls ---------------------------------------------------------------------------------------
    def call_invited(self, caller: int, callee: int, call_id: str, media: str) -> None:
        """A call rings ``callee``: push it to their devices if no terminal of theirs is looked at. Sent at
        once by the node that took the invite, not queued: after the ring timeout it means nothing (the
        missed call then arrives as a message, pushed like any other)."""
        if self.config.push_enabled:
            self._spawn(self._push_call(caller, callee, call_id, media))

    async def _push_call(self, caller: int, callee: int, call_id: str, media: str) -> None:
        if callee in await self._attending({callee}):
            return
        devices = await self.storage.push_devices(callee)
        if not devices:
            return
        preview = (await self.storage.push_prefs(callee)).preview
        conv = private_conv(caller, callee)
        data: dict[str, Any] = {"type": "call", "call": call_id, "conv": conv, "media": media, "tag": "call"}
        if preview != "none":
            users = await self.storage.users([caller])
            data["title"] = users[caller].nickname if caller in users else ""
        body = msgspec.json.encode(data)
        ttl = int(self.config.call_ring_timeout_s)

        async def one(device: PushDevice) -> None:
            sender = self.senders.get(device.kind)
            if sender is None:
                return
            outcome = await sender.send(
                device, body, ttl=ttl, topic=payloads.topic_of("call"), urgency="high"
            )
            if outcome.gone:
                await self.storage.remove_push_device(device.id)
            elif outcome.delivered:
                self.sent += 1
            else:
                self.failed += 1

        await asyncio.gather(*(one(device) for device in devices))

    # -- sending -------------------------------------------------------------------------------------
    async def drain(self) -> int:
        """Claim the due rows, send them, and record the outcomes in one transaction; how many were claimed
        (the worker loops while there are)."""
        jobs = await self.storage.claim_pushes(self.node_id, self.clock(), _LEASE_MS, _CLAIM)
        if not jobs:
            return 0
        outcomes = await asyncio.gather(*(self._send(job) for job in jobs))
        done = [item for item in outcomes if item is not None]
        if done:
            now = self.clock()
            await self.storage.finish_pushes(done, now, self.window_ms)
            for item in done:
                if item.retry_at is not None:
                    self._due(item.retry_at)
                else:
                    # A message to that row now (or one that came while this was out) waits until the window
                    # this send opened has passed: this node wakes for it then, whichever node queued it. (A
                    # clear that came meanwhile is due at once: the loop claims again right after a claim.)
                    self._due(now + self.window_ms)
        return len(jobs)

    def _due(self, at_ms: int) -> None:
        """Wake the worker at ``at_ms``: rows this node's sends made due later (a retry, a window)."""
        self._alarm.at(at_ms)

    async def _send(self, job: PushJob) -> Finished | None:
        """Send one job; how it ended (None: its device is gone and was deleted with its rows)."""
        sender = self.senders.get(job.device.kind)
        if sender is None:
            return Finished(job, sent=False)
        body = payloads.payload(job, job.preview)
        try:
            outcome = await sender.send(
                job.device,
                body,
                ttl=self.config.push_ttl_s,
                topic=payloads.topic_of(job.conv),
                urgency=payloads.urgency_of(job),
            )
        except Exception:
            log.exception("push to device %s failed", job.device.id)
            outcome = Outcome(0)
        if outcome.delivered:
            self.sent += 1
            return Finished(job, sent=True)
        self.failed += 1
        if outcome.gone:
            log.info("push subscription gone", extra={"device": job.device.id, "status": outcome.status})
            await self.storage.remove_push_device(job.device.id)
            return None
        if outcome.transient and job.attempts + 1 < self.config.push_max_attempts:
            return Finished(job, sent=False, retry_at=self.clock() + self._backoff_ms(job, outcome))
        log.warning(
            "push refused, dropped",
            extra={"device": job.device.id, "status": outcome.status, "attempts": job.attempts + 1},
        )
        return Finished(job, sent=False)

    def _backoff_ms(self, job: PushJob, outcome: Outcome) -> int:
        if outcome.retry_after_s is not None:
            return int(min(outcome.retry_after_s, 3600) * 1000)
        base = self.config.push_retry_base_s * 1000 * (2**job.attempts)
        return int(min(base, 600_000) * random.uniform(0.8, 1.2))

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        if not self.config.push_enabled:
            return
        self._tasks = [asyncio.create_task(self._plan_loop()), asyncio.create_task(self._send_loop())]

    async def close(self) -> None:
        self._closing = True
        self._plan_wake.set()
        self._alarm.ring()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        for sender in self.senders.values():
            await sender.close()

    async def _plan_loop(self) -> None:
        while not self._closing:
            await self._plan_wake.wait()
            self._plan_wake.clear()
            while self._planned:
                if len(self._planned) < _PLAN_BATCH and not self._closing:
                    await asyncio.sleep(_PLAN_GATHER_S)
                batch, self._planned = self._planned[:_PLAN_BATCH], self._planned[_PLAN_BATCH:]
                try:
                    await self.plan(batch)
                except Exception:
                    log.exception("planning %d pushes failed; their notifications are lost", len(batch))

    async def _send_loop(self) -> None:
        """Claim while there are due rows; then sleep until woken: by this node's queueing or reads (at once),
        by a time its own sends made something due (``_due``), or after ``push_poll_s``, the safety net for
        rows this node was not told of (a node that died holding them; a retry or window another node set
        and then died)."""
        while not self._closing:
            try:
                claimed = await self.drain()
                if self.clock() - self._purged_at > _PURGE_MS:
                    self._purged_at = self.clock()
                    await self.storage.purge_revoked_push_devices()
            except HubbubError:
                claimed = 0
            except Exception:
                log.exception("the push worker failed a round")
                claimed = 0
            if claimed:
                continue
            await self._alarm.wait()

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a push side task failed: %s", task.exception())


def _valid_key(value: str, length: int) -> bool:
    import base64
    import binascii

    try:
        return len(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))) == length
    except (binascii.Error, ValueError):
        return False


def _admitted(item: NewMessage, stored: Stored, targets: list[PushTarget]) -> list[PushTarget]:
    """The devices that may hear of the message, by the rules of the module docstring (attention aside)."""
    mentioned = set(item.mentions)
    quiet = set(stored.quiet)
    kept = []
    for target in targets:
        uid = target.user_id
        if uid == item.sender:
            continue
        mention = item.mention_all or uid in mentioned
        if (uid in quiet or target.dnd) and not (mention and target.prefs.mentions_through_mute):
            continue
        if stored.hot and not mention and target.prefs.hot_groups != "all":
            continue
        kept.append(target)
    return kept
