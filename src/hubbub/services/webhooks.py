"""Incoming and outgoing webhooks (docs/integrations.md, "Webhooks").

**Incoming**: a secret URL (``/api/v1/hooks/<token>``) that posts into one conversation as a bot. The body is
JSON (``text``, optional ``markdown``, ``attachment_url``, ``client_id``); ``client_id`` makes a retry store
nothing new (it becomes the message's cmid, deduplicated like any send). An attachment URL is never fetched:
it is appended to the text as a link.

**Outgoing**: a URL subscribed to a conversation's events (``message``, ``mention`` of a bot, ``member``
changes). The conversation's own message log is the queue: each webhook keeps a cursor (the last seq done),
so an event is never lost across restarts, and events reach a receiver in order. Whichever node holds the
webhook's lease (storage-claimed, ``claim_webhook``) delivers it; a node that loses the lease cannot move the
cursor, so in a cluster each event is delivered by one node. Deliveries are at least once: a receiver
deduplicates by the event's ``id`` (also in ``Hubbub-Event-Id``). Each is signed (``sign``): HMAC-SHA256 of
``"<timestamp>.<body>"`` with the webhook's secret, so a receiver can check who sent it and refuse a replay
older than its window. A failure is retried with exponential backoff; after ``webhook_max_failures`` in a
row the webhook is disabled and its owner gets a notice from the server account.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import msgspec

from hubbub.config import Config
from hubbub.core.alarm import Alarm, Woke
from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group
from hubbub.core.errors import HubbubError, invalid, not_found
from hubbub.core.models import Ack, Message, User
from hubbub.engines.storage.base import NewMessage, Storage, Stored
from hubbub.engines.storage.base_integrations import EVENTS, Delivery, IncomingHook, OutgoingHook
from hubbub.services.bots import BotService, token_hash
from hubbub.services.egress import Egress, RefusedDestination, check_url
from hubbub.services.messages import MessageService

log = logging.getLogger(__name__)

#: Incoming webhook URL tokens start with this.
HOOK_PREFIX = "hbw_"
#: Entries kept in each webhook's delivery log.
LOG_KEEP = 50
#: Longest wait between retries.
MAX_BACKOFF_S = 600.0
#: Messages read per claim of a webhook.
BATCH = 20
#: Member-change notices of a group (services/groups.py) delivered as ``member`` events.
MEMBER_EVENTS = frozenset({"created", "joined", "kicked", "left"})


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``Hubbub-Signature`` header: ``v1=`` and the hex HMAC-SHA256 of ``"<timestamp>.<body>"``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(
    secret: str, timestamp: str, signature: str, body: bytes, window_s: int, now_s: int | None = None
) -> bool:
    """What a receiver does (docs/integrations.md has the same in a dozen lines): the signature matches and
    the timestamp is within the window, so a captured delivery cannot be replayed later."""
    if not timestamp.isdigit():
        return False
    now = int(time.time()) if now_s is None else now_s
    if abs(now - int(timestamp)) > window_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


class IncomingPost(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    text: str = ""
    #: Render as (simple) Markdown: the message is stored with ``format: "markdown"``.
    markdown: bool = False
    #: A file to mention: never fetched, added to the text as a link.
    attachment_url: str | None = None
    #: Makes a retry idempotent: the same client_id stores one message.
    client_id: str | None = None


def classify(hook: OutgoingHook, message: Message) -> str | None:
    """The event ``message`` is for ``hook``, or None when it subscribes to nothing of it."""
    if hook.bot_id is not None and message.sender == hook.bot_id:
        return None  # a bot's own messages never come back to it (no echo loops)
    if message.type == "system":
        if "member" in hook.events and message.body.get("event") in MEMBER_EVENTS:
            return "member"
        return None
    if message.type == "recall":
        return None
    mentions = message.body.get("mentions") or []
    if "mention" in hook.events and hook.bot_id is not None and hook.bot_id in mentions:
        return "mention"
    if "message" in hook.events:
        return "message"
    return None


class IncomingWebhooks:
    def __init__(self, storage: Storage, messages: MessageService, bots: BotService) -> None:
        self.storage = storage
        self.messages = messages
        self.bots = bots

    async def create(self, actor: int, conv: str, bot_id: int, name: str) -> tuple[IncomingHook, str]:
        """A hook posting into ``conv`` as the bot: the actor manages the bot and both are members."""
        await self.bots.managed(actor, bot_id)
        await self.messages.window(actor, conv)
        await self.messages.window(bot_id, conv)
        if len(name) > 64:
            raise invalid("name", "at most 64 characters")
        token = HOOK_PREFIX + secrets.token_urlsafe(32)
        hook = await self.storage.create_incoming_hook(token_hash(token), conv, bot_id, actor, name, now_ms())
        return hook, token

    async def post(self, token: str, post: IncomingPost) -> Ack:
        hook = await self.storage.incoming_hook(token_hash(token))
        if hook is None or hook.revoked:
            raise not_found("webhook")
        text = post.text.strip()
        if post.attachment_url is not None:
            check_url(post.attachment_url, "attachment_url")
            link = f"[{post.attachment_url}]({post.attachment_url})" if post.markdown else post.attachment_url
            text = f"{text}\n{link}" if text else link
        if not text:
            raise invalid("text", "text or attachment_url is required")
        if post.client_id is not None and not 1 <= len(post.client_id) <= 48:
            raise invalid("client_id", "1 to 48 characters")
        cmid = (
            f"hook{hook.id}:{post.client_id}" if post.client_id else f"hook{hook.id}:{secrets.token_hex(12)}"
        )
        body: dict[str, Any] = {"text": text}
        if post.markdown:
            body["format"] = "markdown"
        stored = await self.messages.enqueue(
            hook.bot_id, to=None, conv=hook.conv, cmid=cmid, msg_type="text", body=body
        )
        return Ack.of(await stored)


class OutgoingWebhooks:
    """Managing outgoing webhooks; delivering them is ``Dispatcher``'s."""

    def __init__(self, storage: Storage, messages: MessageService, bots: BotService) -> None:
        self.storage = storage
        self.messages = messages
        self.bots = bots
        #: Called when a webhook was created or enabled (the root wires this node's dispatcher, which then
        #: looks at it at once instead of at its next sweep).
        self.on_change: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for listener in self.on_change:
            listener()

    async def create(
        self, actor: int, conv: str, url: str, events: list[str], bot_id: int | None
    ) -> OutgoingHook:
        await self.messages.window(actor, conv)
        check_url(url)
        if not events or not set(events) <= set(EVENTS):
            raise invalid("events", f"one or more of {', '.join(EVENTS)}")
        if "mention" in events and bot_id is None:
            raise invalid("bot_id", "a mention webhook names the bot whose mentions it delivers")
        if bot_id is not None:
            await self.bots.managed(actor, bot_id)
        wanted = [e for e in EVENTS if e in events]
        secret = secrets.token_hex(32)
        hook = await self.storage.create_outgoing_hook(actor, conv, url, secret, wanted, bot_id, now_ms())
        self._changed()
        return hook

    async def owned(self, actor: int, hook_id: int) -> OutgoingHook:
        hook = await self.storage.outgoing_hook(hook_id)
        if hook is None or hook.owner_id != actor:
            raise not_found("webhook")
        return hook

    async def deliveries(self, actor: int, hook_id: int, limit: int) -> list[Delivery]:
        await self.owned(actor, hook_id)
        return await self.storage.deliveries(hook_id, limit)

    async def delete(self, actor: int, hook_id: int) -> None:
        await self.owned(actor, hook_id)
        await self.storage.delete_outgoing_hook(hook_id)

    async def enable(self, actor: int, hook_id: int) -> OutgoingHook:
        await self.owned(actor, hook_id)
        await self.storage.enable_outgoing_hook(hook_id)
        self._changed()
        return await self.owned(actor, hook_id)


class Dispatcher:
    """Delivers outgoing webhooks from this node, one task per webhook.

    It wakes on work, not on a clock: when this node stores a message in a conversation that has a webhook
    (``stored``, a ``MessageService.on_stored`` listener), when a webhook was created or enabled here, and when
    a retry falls due. Every ``webhook_poll_s`` a sweep looks at every webhook, the safety net for what this
    node cannot see: messages stored by other nodes (or by a gateway-only node, which runs no dispatcher),
    webhooks created elsewhere, leases of a node that died. A sweep lists the webhooks and asks which have
    events waiting (two queries, whatever their number) and claims only those; a wake for a stored message
    claims that conversation's webhooks as of the last sweep, without listing them again. A worker that runs
    out of events gives its lease back, so the next node to store a message in that conversation claims it at
    once."""

    def __init__(
        self,
        config: Config,
        storage: Storage,
        egress: Egress,
        notify: Callable[[int, str], Awaitable[object]],
    ) -> None:
        self.config = config
        self.storage = storage
        self.egress = egress
        self.notify = notify
        self.node = config.effective_node_id
        #: Deliveries attempted by this node (tests and figures).
        self.attempts = 0
        self._working: dict[int, asyncio.Task[None]] = {}
        self._users: dict[int, User] = {}
        #: Rung by a stored message or a webhook change here; due at the earliest retry; polls every interval.
        self._alarm = Alarm(config.webhook_poll_s)
        #: Conversations with messages stored here since the last round; a sweep looks at every webhook.
        self._dirty: set[str] = set()
        self._sweep = True
        #: Webhooks woken while their worker ran (it may have read past the new message already).
        self._again: set[int] = set()
        #: The enabled webhooks by conversation, as of the last sweep: what ``stored`` wakes for and claims.
        self._hooks: dict[str, list[OutgoingHook]] = {}
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def lease_ms(self) -> int:
        # Longer than a whole batch can take, so a live node never loses a lease mid-batch.
        return int((self.config.webhook_timeout_s * BATCH + 30) * 1000)

    def start(self) -> None:
        if self._task is None:
            self._alarm.ring()  # a first sweep at once (``_sweep`` starts true): what was left while no node ran
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="webhooks")

    async def close(self) -> None:
        self._closing = True
        self._alarm.ring()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for work in list(self._working.values()):
            work.cancel()
        if self._working:
            await asyncio.gather(*self._working.values(), return_exceptions=True)
        try:
            await self.storage.release_webhooks(self.node)
        except HubbubError:
            pass

    def stored(self, items: Sequence[tuple[NewMessage, Stored]]) -> None:
        """A batch was stored on this node: wake for the conversations that have a webhook."""
        for item, _ in items:
            self.noticed(item.conv)

    def noticed(self, conv: str) -> None:
        """A message was stored in ``conv`` on this node (a group's notice comes this way)."""
        if conv in self._hooks:
            self._dirty.add(conv)
            self._alarm.ring()

    def hooks_changed(self) -> None:
        """A webhook was created or enabled on this node: sweep now (it may have events already)."""
        self._sweep = True
        self._alarm.ring()

    async def _loop(self) -> None:
        while not self._closing:
            if await self._alarm.wait() is not Woke.RUNG:
                self._sweep = True  # a retry fell due, or the interval's safety net
            sweep, convs = self._sweep, self._dirty
            self._sweep, self._dirty = False, set()
            try:
                await self.tick(None if sweep else convs)
            except HubbubError as exc:
                self._sweep = True  # whatever woke this round is looked at again by the next
                log.warning("webhooks: %s", exc.message)
            except Exception:
                self._sweep = True
                log.exception("webhooks failed a round")

    async def tick(self, convs: set[str] | None = None) -> None:
        """Claim and start the due webhooks of ``convs`` (None: of every conversation, those with events
        waiting past their cursor)."""
        now = now_ms()
        if convs is None:
            hooks = await self.storage.outgoing_hooks(None)
            waiting = await self.storage.webhooks_waiting()
            self._hooks = {}
            for hook in hooks:
                self._hooks.setdefault(hook.conv, []).append(hook)
            retry_at = min((h.next_attempt_at for h in hooks if h.next_attempt_at > now), default=None)
            if retry_at is not None:
                self._alarm.at(retry_at)
            candidates = [hook for hook in hooks if hook.id in waiting]
        else:
            candidates = [hook for conv in convs for hook in self._hooks.get(conv, ())]
        for hook in candidates:
            if hook.next_attempt_at > now:
                continue
            if hook.id in self._working:
                if convs is not None:  # woken for it: the worker may have read past the new message
                    self._again.add(hook.id)
                continue
            # The claim checks what the listing may no longer say (enabled, due, lease free).
            claimed = await self.storage.claim_webhook(hook.id, self.node, now, self.lease_ms)
            if claimed is None:
                continue
            task = asyncio.get_running_loop().create_task(self._work(claimed), name=f"webhook-{hook.id}")
            self._working[hook.id] = task
            task.add_done_callback(functools.partial(self._finished, hook.id, hook.conv))

    def _finished(self, hook_id: int, conv: str, _task: asyncio.Task[None]) -> None:
        self._working.pop(hook_id, None)
        if hook_id in self._again and not self._closing:
            self._again.discard(hook_id)
            self._dirty.add(conv)
            self._alarm.ring()

    async def _work(self, hook: OutgoingHook) -> None:
        """Deliver from the cursor while there is work, renewing the lease between batches; when there is none
        left, give the lease back (and look once more: a node that stored a message meanwhile could not claim
        it, and stored it before the release, so the look sees it)."""
        try:
            while True:
                found = await self.storage.messages_after(hook.conv, hook.cursor_seq, BATCH)
                if not await self._run(hook, found):
                    return
                if len(found) < BATCH:
                    await self.storage.release_webhooks(self.node, hook.id)
                    if not await self.storage.messages_after(hook.conv, hook.cursor_seq, 1):
                        return
                renewed = await self.storage.claim_webhook(hook.id, self.node, now_ms(), self.lease_ms)
                if renewed is None:
                    return
                hook = renewed
        except HubbubError as exc:
            log.warning("webhook %s: %s", hook.id, exc.message)
        except Exception:
            log.exception("webhook %s failed", hook.id)

    async def _run(self, hook: OutgoingHook, found: list[Message]) -> bool:
        """Deliver a batch in order; True when all of it is done. The cursor moves with each delivered event
        (in the transaction that logs it), and past a run of events the webhook does not subscribe to in one
        write."""
        skipped: int | None = None
        for message in found:
            event = classify(hook, message)
            if event is None:
                skipped = message.seq
                continue
            outcome = await self._deliver(hook, event, message)
            if outcome != "ok":
                if outcome == "failed" and skipped is not None:
                    await self.storage.advance_webhook(hook.id, self.node, skipped)
                return False
            skipped = None
            hook.cursor_seq, hook.failures = message.seq, 0
        if skipped is not None:
            if not await self.storage.advance_webhook(hook.id, self.node, skipped):
                return False  # the lease went to another node: it carries on from the cursor
            hook.cursor_seq = skipped
        return True

    async def payload(self, hook: OutgoingHook, event: str, message: Message) -> dict[str, Any]:
        sender = self._users.get(message.sender)
        if sender is None:
            sender = (await self.storage.users([message.sender])).get(message.sender)
            if sender is not None:
                self._users[message.sender] = sender
        return {
            "id": f"{hook.id}-{message.id}",
            "type": event,
            "webhook": hook.id,
            "conv": message.conv,
            "group": parse_group(message.conv),
            "message": message,
            "sender": sender,
        }

    async def _deliver(self, hook: OutgoingHook, event: str, message: Message) -> str:
        """One attempt: "ok" (2xx, logged and the cursor moved past it), "failed" (retry later) or "lost"
        (delivered, but the lease is another node's now: it goes on from the cursor)."""
        data = await self.payload(hook, event, message)
        body = msgspec.json.encode(data)
        ts = int(time.time())
        headers = {
            "Hubbub-Event": event,
            "Hubbub-Event-Id": data["id"],
            "Hubbub-Timestamp": str(ts),
            "Hubbub-Signature": sign(hook.secret, ts, body),
        }
        started = time.monotonic()
        status, response = 0, ""
        self.attempts += 1
        try:
            status, raw = await self.egress.post_json(hook.url, body, headers, self.config.webhook_timeout_s)
            response = raw[:512].decode(errors="replace")
        except RefusedDestination as exc:
            response = f"refused: {exc}"
        except TimeoutError:
            response = f"timeout after {self.config.webhook_timeout_s} s"
        except (aiohttp.ClientError, OSError) as exc:
            response = f"error: {exc or type(exc).__name__}"
        ok = 200 <= status < 300
        attempt = hook.failures + 1
        logged = await self.storage.log_delivery(
            Delivery(
                webhook_id=hook.id,
                event_id=data["id"],
                event=event,
                attempt=attempt,
                status=status,
                ok=ok,
                response=response[:512],
                duration_ms=int((time.monotonic() - started) * 1000),
                ts=now_ms(),
                node=self.node,
            ),
            LOG_KEEP,
            advance_to=message.seq if ok else None,
        )
        if ok:
            return "ok" if logged else "lost"
        c = self.config
        disable = attempt >= c.webhook_max_failures
        delay = min(MAX_BACKOFF_S, c.webhook_retry_base_s * 2 ** (attempt - 1))
        retry_at = now_ms() + int(delay * 1000)
        if await self.storage.fail_webhook(hook.id, self.node, attempt, retry_at, disable):
            hook.failures = attempt
            for listed in self._hooks.get(hook.conv, ()):  # wakes before the next sweep skip it until then
                if listed.id == hook.id:
                    listed.next_attempt_at = retry_at
            if not disable:
                self._alarm.at(retry_at)
            if disable:
                text = (
                    f"Your webhook {hook.id} to {hook.url} was disabled after {attempt} failed deliveries "
                    f"(last: {status or response}). Enable it again once the receiver works."
                )
                try:
                    await self.notify(hook.owner_id, text)
                except HubbubError as exc:
                    log.warning("webhook %s disabled, but its owner was not told: %s", hook.id, exc.message)
        return "failed"
