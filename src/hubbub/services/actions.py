"""Message actions: edit, react, pin, forward, delete for me, and typing in groups (docs/protocol.md, "Message
actions"; replies are services/replies.py, taken on the send path).

Every action is checked here before anything is written (membership, the member's window, the target, who may
do it, the content rules), then written in one transaction that checks the group's rules again as they are then
(``Storage.apply_action`` with an ``admit``): a refusal writes nothing. Edits, reactions and pins are events in
the conversation's seq, published exactly like a send (``MessageService.publish``): pushed as ``msg``, or in a
hot group cached and signalled by ``news`` (push-pull: never one frame per member). Retries are idempotent:
an edit by its action id, a reaction or pin by the state it asks for, a forward by cmids derived from its id.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import emoji as emoji_data
import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.ids import MessageIds
from hubbub.core.models import Message
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import (
    GroupFacts,
    MemberFacts,
    NewMessage,
    Rejected,
    Storage,
)
from hubbub.engines.storage.base_actions import ActionResult, MessageChange, Pin
from hubbub.engines.storage.sql_actions import ACTIONABLE_TYPES
from hubbub.services import content, pushes
from hubbub.services.batcher import Queued
from hubbub.services.group_rules import Action, refusal
from hubbub.services.hot import HotGroups
from hubbub.services.limits import enforce
from hubbub.services.messages import SYSTEM_CMID_PREFIX, MessageService, admit_group_message, check_cmid

#: Body keys only the server sets; a forwarded copy drops them (it is a new message).
SERVER_KEYS = ("reply", "forward", "edited", "reactions", "mentions", "mention_all")
#: What may be forwarded: what people send (a server notice is forwarded as text).
FORWARDABLE = ("text", "image", "file", "voice", "video", "notice")
#: Typing pushes remembered per node before the throttle starts over (bounded memory).
_TYPING_MEMO_MAX = 100_000


def admit_member(item: NewMessage, facts: GroupFacts) -> HubbubError | None:
    """Reactions: the group's state allows changes others see, and the actor is a member (mutes do not stop
    a reaction: it is not speech)."""
    refused = refusal(Action.SEND, facts.group)
    if refused is not None:
        return refused
    if item.sender not in facts.members:
        return HubbubError(Code.FORBIDDEN, "you are not a member of this group")
    return None


def admit_pin(item: NewMessage, facts: GroupFacts) -> HubbubError | None:
    """Pins: a member's, and by the group's ``pin_policy`` only the owner and admins' (the default)."""
    refused = admit_member(item, facts)
    if refused is not None:
        return refused
    if facts.group.pin_policy != "members" and facts.members[item.sender].role == "member":
        return HubbubError(Code.FORBIDDEN, "only the owner and admins can pin messages in this group")
    return None


def check_emoji(config: Config, value: str) -> str:
    """One emoji (RGI, skin tones included) or, when the server lists them, one of its list."""
    allowed = [e.strip() for e in config.reaction_emoji.split(",") if e.strip()]
    if (value in allowed) if allowed else emoji_data.is_emoji(value):
        return value
    raise HubbubError(
        Code.REACTION_INVALID, "a reaction is one emoji" + (" of the server's list" if allowed else "")
    )


def forward_cmid(aid: str, target: str, index: int) -> str:
    """The cmid of one forwarded copy: the same for a retried forward, unique per target and item."""
    digest = hashlib.sha256(f"{aid}\x00{target}\x00{index}".encode()).hexdigest()[:40]
    return f"{SYSTEM_CMID_PREFIX}fwd:{digest}"


def forwarded_body(original: Message, show_sender: bool) -> tuple[str, dict[str, Any]]:
    """The type and body of a forwarded copy: the content (media by reference: the same upload), marked."""
    body = {k: v for k, v in original.body.items() if k not in SERVER_KEYS}
    mark: dict[str, Any] = {"ts": original.ts}
    if show_sender:
        mark["sender"] = original.sender
    body["forward"] = mark
    return ("text" if original.type == "notice" else original.type), body


class ActionService:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        routing: Routing,
        messages: MessageService,
        ids: MessageIds,
        hot: HotGroups,
        rules: content.ContentRules,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.messages = messages
        self.ids = ids
        self.hot = hot
        self.content = rules
        self.clock = clock
        #: (user, conv) -> monotonic time of the last typing push forwarded (the group throttle).
        self._typing: dict[tuple[int, str], float] = {}
        #: conv -> actions waiting for this node's next transaction on it (dropped when none waits).
        self._queues: dict[str, list[Any]] = {}

    # -- shared checks ----------------------------------------------------------------------------
    async def _target(self, user_id: int, conv: str, seq: int) -> Message:
        """A message the user can see and act on: in their window, not recalled, not a notice."""
        _, min_seq = await self.messages.window(user_id, conv)
        target = await self.storage.message(conv, seq) if seq > min_seq else None
        if target is None or target.recalled or target.type not in ACTIONABLE_TYPES:
            raise not_found("message")
        return target

    def _notice(self, user_id: int, conv: str, kind: str, cmid: str, body: dict[str, Any]) -> NewMessage:
        return NewMessage(
            id=self.ids.next(),
            conv=conv,
            sender=user_id,
            cmid=cmid,
            type=kind,
            body=body,
            ts=self.clock(),
            members=self.messages.members_of(conv),
        )

    async def _apply(self, notice: NewMessage, change: MessageChange, admit: Any) -> ActionResult:
        """Apply through this node's batch for the conversation. Actions on one conversation serialize on its
        row lock anyway; here they wait holding no database connection (a storm would otherwise take the
        whole pool, and pulls would time out waiting for one), and those that arrive while a batch is being
        written go together in the next: one transaction, one publish (one ``news`` in a hot group)."""
        waiting: asyncio.Future[ActionResult | Rejected] = asyncio.get_running_loop().create_future()
        queue = self._queues.get(notice.conv)
        if queue is not None:
            queue.append((notice, change, admit, waiting))
        else:
            self._queues[notice.conv] = queue = [(notice, change, admit, waiting)]
            asyncio.get_running_loop().create_task(self._drain(notice.conv, queue))
        result = await waiting
        if isinstance(result, Rejected):
            raise result.error
        return result

    async def _drain(self, conv: str, queue: list[Any]) -> None:
        """Write the conversation's queued actions, a batch at a time, until none is left."""
        try:
            while queue:
                batch = queue[: self.config.max_batch]
                del queue[: len(batch)]
                try:
                    results = await self.storage.apply_actions(conv, [(n, c, a) for n, c, a, _ in batch])
                    await self._publish(batch, results)
                except Exception as exc:  # (storage unavailable...): every action of the batch is told
                    for *_, waiting in batch:
                        if not waiting.done():
                            waiting.set_exception(exc)
                    continue
                for (*_, waiting), result in zip(batch, results, strict=True):
                    if not waiting.done():
                        waiting.set_result(result)
        finally:
            if self._queues.get(conv) is queue:
                del self._queues[conv]

    async def _publish(self, batch: list[Any], results: Sequence[ActionResult | Rejected]) -> None:
        published = [
            (Queued(notice), result)
            for (notice, *_), result in zip(batch, results, strict=True)
            if isinstance(result, ActionResult) and result.stored is not None
        ]
        if not published:
            return
        if parse_group(published[0][0].item.conv) is not None:
            # A hot group's cache may hold the targets (on any node): it must serve their current bodies.
            latest = {r.target.seq: r.target for _, r in published}
            for target in latest.values():
                await self.hot.changed(target)
        stored = [r.stored for _, r in published if r.stored is not None]
        await self.messages.publish([q for q, _ in published], stored)

    # -- edit -------------------------------------------------------------------------------------
    async def edit(
        self,
        user_id: int,
        conv: str,
        seq: int,
        *,
        aid: str,
        text: str,
        mentions: Sequence[int] | None = None,
        mention_all: bool = False,
    ) -> Message:
        """Replace the text of the caller's own text message; the ``edit`` event (a retry with the same
        ``aid`` gets the same one), or the message as it is when the text (and mentions) are unchanged."""
        check_cmid(aid, "aid")
        target = await self._target(user_id, conv, seq)
        if target.sender != user_id:
            raise HubbubError(Code.FORBIDDEN, "only the sender can edit a message")
        if target.type != "text":
            raise HubbubError(Code.NOT_EDITABLE, "only text messages can be edited")
        now = self.clock()
        window = self.config.edit_window_s
        if window and now - target.ts > window * 1000:
            raise HubbubError(Code.EDIT_EXPIRED, f"messages can be edited for {window} s")
        in_group = parse_group(conv) is not None
        new: dict[str, Any] = {"text": text}
        if mentions:
            new["mentions"] = list(mentions)
        if mention_all:
            new["mention_all"] = True
        await self.content.validate(user_id, "text", new, in_group)  # length, mentions, the word filter
        await enforce(self.messages.limiter, f"send:{user_id}", self.config.send_rate, self.config.send_burst)
        added: tuple[int, ...] = ()
        added_all = False
        if in_group:
            was, was_all = content.mentions_of(target.body)
            now_mentions, added_all = content.mentions_of(new)
            added = tuple(sorted(set(now_mentions) - set(was)))
            added_all = added_all and not was_all
        body = {k: v for k, v in target.body.items() if k not in ("text", "mentions", "mention_all")}
        body.update(new, edited=now)
        event = {"seq": seq, **new, "edited": now}
        notice = self._notice(user_id, conv, "edit", f"{SYSTEM_CMID_PREFIX}edit:{aid}", event)
        notice = msgspec.structs.replace(notice, ts=now, mentions=added, mention_all=added_all)
        result = await self._apply(
            notice, MessageChange(kind="edit", seq=seq, body=body), admit_group_message
        )
        if result.stored is None:
            return result.target  # the same text: nothing to change
        return result.stored.message  # (re-indexed for search in the same transaction: apply_actions)

    async def edits(self, user_id: int, conv: str, seq: int) -> list[tuple[str, int]]:
        """Every version of a message's text, (text, ts) oldest first, the current one last."""
        target = await self._target(user_id, conv, seq)
        earlier = await self.storage.message_edits(conv, seq)
        current = target.body.get("text")
        if not isinstance(current, str):
            return earlier
        return [*earlier, (current, int(target.body.get("edited", target.ts)))]

    # -- reactions --------------------------------------------------------------------------------
    async def react(self, user_id: int, conv: str, seq: int, emoji: str, on: bool = True) -> ActionResult:
        """Add (or remove) the caller's ``emoji`` reaction; the event is None when nothing changed."""
        check_emoji(self.config, emoji)
        await self._target(user_id, conv, seq)
        notice = self._notice(
            user_id,
            conv,
            "reaction",
            f"{SYSTEM_CMID_PREFIX}react:{self.ids.next()}",
            {"seq": seq, "emoji": emoji, "on": on},
        )
        change = MessageChange(
            kind="react", seq=seq, emoji=emoji, on=on, max_distinct=self.config.max_reactions
        )
        return await self._apply(notice, change, admit_member)

    async def reaction_users(
        self, user_id: int, conv: str, seq: int, emoji: str, after: int, limit: int
    ) -> list[int]:
        await self._target(user_id, conv, seq)
        return await self.storage.reaction_users(conv, seq, emoji, after, limit)

    # -- pins -------------------------------------------------------------------------------------
    async def pin(self, user_id: int, conv: str, seq: int, on: bool = True) -> ActionResult:
        """Pin (or unpin) a message; private: either side, group: by its ``pin_policy``."""
        await self._target(user_id, conv, seq)
        group_id = parse_group(conv)
        if group_id is not None:  # a clear refusal before the transaction, which checks it again
            group = await self.storage.group(group_id)
            member = await self.storage.group_member(group_id, user_id)
            if group is not None and member is not None:
                facts = GroupFacts(
                    group=group, members={user_id: MemberFacts(member.role, member.muted_until)}
                )
                probe = self._notice(user_id, conv, "pin", "~probe", {})
                refused = admit_pin(probe, facts)
                if refused is not None:
                    raise refused
        notice = self._notice(
            user_id, conv, "pin", f"{SYSTEM_CMID_PREFIX}pin:{self.ids.next()}", {"seq": seq, "on": on}
        )
        return await self._apply(notice, MessageChange(kind="pin", seq=seq, on=on), admit_pin)

    async def pins(self, user_id: int, conv: str) -> list[tuple[Pin, Message]]:
        """The pinned messages the caller can see, newest pin first."""
        _, min_seq = await self.messages.window(user_id, conv)
        found = []
        for pin in await self.storage.pins(conv):
            if pin.seq <= min_seq:
                continue
            message = await self.storage.message(conv, pin.seq)
            if message is not None and not message.recalled:
                found.append((pin, message))
        return found

    # -- forward ----------------------------------------------------------------------------------
    async def forward(
        self,
        user_id: int,
        *,
        aid: str,
        items: Sequence[tuple[str, int]],
        targets: Sequence[str],
        show_sender: bool = False,
    ) -> list[Message]:
        """Copy messages the caller can read into conversations the caller can write to; the stored copies,
        targets outer. Everything is checked before anything is stored."""
        check_cmid(aid, "aid")
        if not 1 <= len(items) <= self.config.forward_max_items:
            raise invalid("items", f"1 to {self.config.forward_max_items} messages")
        if not 1 <= len(targets) <= self.config.forward_max_targets:
            raise invalid("targets", f"1 to {self.config.forward_max_targets} conversations")
        if len(set(targets)) != len(targets):
            raise invalid("targets", "a conversation is named twice")
        originals = []
        for conv, seq in items:
            try:
                original = await self._target(user_id, conv, seq)
            except HubbubError as exc:
                raise HubbubError(exc.code, f"item {conv}/{seq}: {exc.message}") from None
            if original.type not in FORWARDABLE:
                raise HubbubError(Code.NOT_FOUND, f"item {conv}/{seq}: message not found")
            originals.append(original)
        queued = []
        for target in targets:
            try:
                await self._check_writable(user_id, target)
            except HubbubError as exc:
                raise HubbubError(exc.code, f"target {target}: {exc.message}", **exc.extra) from None
            for index, original in enumerate(originals):
                kind, body = forwarded_body(original, show_sender)
                item = self._notice(user_id, target, kind, forward_cmid(aid, target, index), body)
                queued.append(item)
        limiter, c = self.messages.limiter, self.config
        for _ in queued:
            await enforce(limiter, f"send:{user_id}", c.send_rate, c.send_burst)
        for upload in {u for o in originals for u in _uploads_of(o)}:
            # No re-upload: the copy names the same upload, readable through the forwarder's reference.
            await self.storage.add_upload_ref(upload, user_id, self.clock())
        return await self.messages.post(queued)

    async def _check_writable(self, user_id: int, conv: str) -> None:
        """A send to ``conv`` would be admitted now (the storing transaction checks the group again)."""
        group_id = parse_group(conv)
        if group_id is None:
            await self.messages.private_conv(user_id, conv)
            return
        group = await self.storage.group(group_id)
        member = await self.storage.group_member(group_id, user_id)
        if group is None:
            raise not_found("conversation")
        if member is None:
            raise HubbubError(Code.FORBIDDEN, "you are not a member of this group")
        facts = GroupFacts(group=group, members={user_id: MemberFacts(member.role, member.muted_until)})
        refused = admit_group_message(self._notice(user_id, conv, "text", "~probe", {}), facts)
        if refused is not None:
            raise refused

    # -- delete for me ----------------------------------------------------------------------------
    async def hide(self, user_id: int, conv: str, seqs: Sequence[int]) -> list[int]:
        """Hide ``seqs`` from the caller's own view on all their terminals; those in their window."""
        if len(seqs) > 100:
            raise invalid("seqs", "at most 100 at a time")
        _, min_seq = await self.messages.window(user_id, conv)
        kept = sorted({s for s in seqs if s > min_seq})
        if kept:
            await self.storage.hide_messages(user_id, conv, kept)
            self.messages.hidden.forget(conv)
            await self.routing.publish([pushes.hidden(conv, user_id, kept)])
        return kept

    async def hidden(self, user_id: int, conv: str) -> list[int]:
        await self.messages.window(user_id, conv)
        return await self.storage.hidden_seqs(user_id, conv)

    # -- typing in groups -------------------------------------------------------------------------
    async def typing(self, user_id: int, conv: str) -> None:
        """Tell a small group's other online members that ``user_id`` is typing, at most once per
        ``typing_interval_ms`` per user and group (the rest are dropped: coalesced). Refused (``forbidden``,
        stop sending) in groups past ``group_typing_max_members`` and in push-pull groups, where it would fan
        out to thousands; dropped for a muted member."""
        if parse_group(conv) is None:
            await self.messages.typing(user_id, conv)
            return
        key = (user_id, conv)
        now = time.monotonic()
        last = self._typing.get(key)
        if last is not None and now - last < self.config.typing_interval_ms / 1000:
            return
        group_id = parse_group(conv)
        assert group_id is not None
        group = await self.storage.group(group_id)
        member = await self.storage.group_member(group_id, user_id)
        if group is None or member is None:
            raise HubbubError(Code.FORBIDDEN, "you are not a member of this group")
        limit = self.config.group_typing_max_members
        if group.member_count > limit or self.hot.policy.group_is_hot(group):
            raise HubbubError(
                Code.FORBIDDEN, f"typing indicators are for groups of at most {limit} members, not push-pull"
            )
        refused = refusal(Action.SEND, group)
        if refused is not None:
            raise refused
        if (member.role == "member" and group.muted_all) or member.muted_until > self.clock():
            return
        if len(self._typing) >= _TYPING_MEMO_MAX:
            self._typing.clear()
        self._typing[key] = now
        members = [uid for uid in await self.storage.member_floors(conv) if uid != user_id]
        if members:
            await self.routing.publish([pushes.typing(conv, user_id, members)])


def _uploads_of(message: Message) -> list[str]:
    """The uploads a media message names (its file, and a video's poster)."""
    found = []
    if message.type in content.MEDIA_TYPES and isinstance(message.body.get("upload"), str):
        found.append(message.body["upload"])
        poster = message.body.get("poster")
        if isinstance(poster, dict) and isinstance(poster.get("upload"), str):
            found.append(poster["upload"])
    return found
