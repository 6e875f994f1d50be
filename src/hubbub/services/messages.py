"""Sending, reading, syncing and recalling messages, in private conversations and groups.

Guarantees (docs/architecture.md, "Conversations, sequences, sync"):
- a message is stored, with its seq, before it is acknowledged or pushed;
- a retried send (same sender and cmid) returns the first message's ack and stores nothing;
- pushes are a fast path only: ``sync`` + ``pull`` return everything a member may see;
- group sends are checked against membership, mutes and roles inside the storing transaction
  (``admit_group_message``), so they agree with concurrent kicks and mutes.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group, parse_private, peer_of, private_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.ids import MessageIds
from hubbub.core.models import Conversation, Message
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import GroupFacts, NewMessage, Rejected, Storage, Stored
from hubbub.proof.trace import NO_TRACE, Tracer
from hubbub.services import content, hidden, pushes, replies
from hubbub.services.batcher import Queued, SendBatcher
from hubbub.services.friends import FriendService
from hubbub.services.group_rules import Action, allowed, refusal
from hubbub.services.hot import HotGroups
from hubbub.services.limits import enforce

RECALL_TYPE = "recall"
_CONTROL = re.compile("[\x00-\x1f\x7f]")
#: cmids the server makes for its own messages; clients may not use the prefix, so theirs never collide.
SYSTEM_CMID_PREFIX = "~"


def check_cmid(value: str, field: str = "cmid") -> None:
    """A client's id for a send (``cmid``) or an action (``aid``): 1 to 64 characters, no control characters,
    not the server's own prefix."""
    if not 1 <= len(value) <= 64 or value.startswith(SYSTEM_CMID_PREFIX) or _CONTROL.search(value):
        # (PostgreSQL refuses a NUL in text: once a 503 for the whole batch the cmid was sent in.)
        rule = f"1 to 64 characters, no control characters, not starting with {SYSTEM_CMID_PREFIX!r}"
        raise invalid(field, rule)


def admit_group_message(item: NewMessage, facts: GroupFacts) -> HubbubError | None:
    """The send rules of a group, applied to the members as they are inside the storing transaction.

    Also admits recall notices (``Storage.recall_message``): a frozen or dismissed group refuses them, and then
    nothing is blanked.
    """
    refused = refusal(Action.RECALL if item.type == RECALL_TYPE else Action.SEND, facts.group)
    if refused is not None:
        return refused
    member = facts.members.get(item.sender)
    if member is None:
        return HubbubError(Code.FORBIDDEN, "you are not a member of this group")
    if item.type == RECALL_TYPE:
        return None  # who may recall what was checked against the recalled message already
    if member.role == "member" and facts.group.muted_all:
        return HubbubError(Code.MUTED, "only the owner and admins may speak in this group now")
    if member.muted_until > item.ts:
        return HubbubError(Code.MUTED, "you are muted in this group", until=member.muted_until)
    if item.mention_all and not allowed(Action.MENTION_ALL, member.role):
        return HubbubError(Code.FORBIDDEN, "only the owner and admins can @all")
    return None


class MessageService:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        routing: Routing,
        limiter: RateLimiter,
        friends: FriendService,
        ids: MessageIds,
        hot: HotGroups,
        rules: content.ContentRules,
        clock: Callable[[], int] = now_ms,
        tracer: Tracer = NO_TRACE,
    ) -> None:
        self.config = config
        self.trace = tracer  # per-message tracing for admins (proof/trace.py)
        self.hot = hot
        self.content = rules
        self.storage = storage
        self.routing = routing
        self.limiter = limiter
        self.friends = friends
        self.ids = ids
        #: Server time in ms (core/clock.py); a test passes its own to move time.
        self.clock = clock
        self.batcher = SendBatcher(storage, self._publish_stored, admit_group_message, config.max_batch)
        #: Who hid what in hot groups, for pulls served from their cache (services/hidden.py).
        self.hidden = hidden.HiddenMemo(storage)

    # -- sending ----------------------------------------------------------------------------------
    async def enqueue(
        self,
        sender: int,
        *,
        to: int | None,
        conv: str | None,
        cmid: str,
        msg_type: str,
        body: dict[str, Any],
        origin: str | None = None,
    ) -> asyncio.Future[Message]:
        """Check a client's send and queue it for storing; the one way in for WebSocket and REST alike.

        Raises the error the client should see if the send is refused before storing. Otherwise returns, as
        soon as the message is queued (so sends awaited one after another keep their order), a future of the
        stored message: its ack. A resend (same sender and cmid) resolves to the first message. ``origin``,
        the sending connection, is not pushed its own message.
        """
        item = await self._check(sender, to=to, conv=conv, cmid=cmid, msg_type=msg_type, body=body)
        return self.batcher.submit(Queued(item, origin))

    async def post(self, items: Sequence[NewMessage]) -> list[Message]:
        """Store and push messages the server composes itself (admin notices): no client rules apply, but
        they take the sends' path — batched, deduplicated on (sender, cmid), pushed after storing, a resend
        pushed again. Returns the stored messages, in order; raises if any could not be stored."""
        return list(await asyncio.gather(*(self.batcher.submit(Queued(item)) for item in items)))

    async def _check(
        self, sender: int, *, to: int | None, conv: str | None, cmid: str, msg_type: str, body: dict[str, Any]
    ) -> NewMessage:
        """Check everything about a send that needs no storing; the message to store. Raises the error the
        client should see."""
        check_cmid(cmid)
        if to is not None and conv is not None:
            raise invalid("to", "give either 'to' or 'conv', not both")
        in_group = conv is not None and parse_group(conv) is not None
        await self.content.validate(sender, msg_type, body, in_group)
        await enforce(self.limiter, f"send:{sender}", self.config.send_rate, self.config.send_burst)
        mentions: tuple[int, ...] = ()
        mention_all = False
        if conv is not None and in_group:
            mentions, mention_all = content.mentions_of(body)
        else:
            conv = await self._private_conv(sender, to, conv)
        if "reply" in body:  # (text only: content.check_text admits the key)
            _, min_seq = await self._membership(sender, conv)
            body["reply"] = await replies.snapshot(self.storage, conv, min_seq, body["reply"])
        return NewMessage(
            id=self.ids.next(),
            conv=conv,
            sender=sender,
            cmid=cmid,
            type=msg_type,
            body=body,
            ts=self.clock(),
            members=_members_of(conv),
            mentions=mentions,
            mention_all=mention_all,
        )

    async def private_conv(self, sender: int, conv: str) -> str:
        """``conv`` if ``sender`` may send there now (a private conversation: friendship, the peer exists)."""
        return await self._private_conv(sender, None, conv)

    @staticmethod
    def members_of(conv: str) -> tuple[int, ...]:
        """Who a new conversation is created for: the two of a private one (a group's exist already)."""
        return _members_of(conv)

    async def publish(self, batch: Sequence[Queued], results: Sequence[Stored]) -> None:
        """Push (or, in a hot group, cache and signal) messages stored outside the batcher: action events."""
        await self._publish_stored(batch, results)

    async def _private_conv(self, sender: int, to: int | None, conv: str | None) -> str:
        if to is not None:
            peer = to
        elif conv is not None:
            maybe_peer = peer_of(conv, sender)
            if maybe_peer is None:
                if parse_private(conv) is None:
                    raise not_found("conversation")
                raise HubbubError(Code.FORBIDDEN, "not your conversation")
            peer = maybe_peer
        else:
            raise invalid("to", "give 'to' (a user id) or 'conv'")
        if peer == sender:
            raise invalid("to", "you cannot message yourself")
        if self.config.private_requires_friendship:
            if not await self.friends.are_friends(sender, peer):
                if not await self.storage.users([peer]):
                    raise not_found("user")
                raise HubbubError(Code.NOT_FRIENDS, "you can only message friends")
        elif not await self.storage.users([peer]):
            raise not_found("user")
        return private_conv(sender, peer)

    async def _publish_stored(self, batch: Sequence[Queued], results: Sequence[Stored | Rejected]) -> None:
        """Push what a batch stored. A resend's message (``duplicate``) is pushed again, to the recipients
        storage names for the stored message (never the resend's own ``to``/``conv``): its first try may
        have stored it on a node that died before publishing, and recipients drop a seq they hold."""
        if self.trace.on:
            self.trace.stored([q.item for q in batch], results)
        events = []
        hot: list[tuple[NewMessage, Stored]] = []
        published: set[str] = set()
        for queued, result in zip(batch, results, strict=True):
            if isinstance(result, Rejected) or result.message.id in published:
                continue  # (the same cmid twice in one batch: one push)
            published.add(result.message.id)
            item = queued.item
            if result.duplicate:
                item = _as_stored(item, result.message)
            if result.hot:
                hot.append((item, result))
                continue
            recipients = result.recipients if result.duplicate else result.recipients or item.members
            silent = _silenced(item, result.quiet)
            events += pushes.message(result.message, recipients, silent=silent, origin=queued.origin)
        await self.routing.publish(events)
        if hot:
            await self.hot.publish(hot)

    # -- reading ----------------------------------------------------------------------------------
    async def window(self, user_id: int, conv: str) -> tuple[int, int]:
        """(read_seq, min_seq) of a member of ``conv``: they see the messages above ``min_seq``. Refuses
        anyone else (``forbidden``; ``not_found`` for a conversation that cannot exist)."""
        return await self._membership(user_id, conv)

    async def _membership(self, user_id: int, conv: str) -> tuple[int, int]:
        """(read_seq, min_seq) of a member; refuses anyone else. A private conversation with no message
        yet has no rows, so its rightful members get (0, 0)."""
        pair = parse_private(conv)
        if pair is None and parse_group(conv) is None:
            raise not_found("conversation")
        if pair is not None and user_id not in pair:
            raise HubbubError(Code.FORBIDDEN, "not your conversation")
        state = await self.storage.member_state(conv, user_id)
        if state is None:
            if pair is None:
                raise HubbubError(Code.FORBIDDEN, "you are not a member of this group")
            return (0, 0)
        return state

    async def pull_for_wire(
        self, user_id: int, conv: str, after_seq: int, limit: int
    ) -> tuple[Sequence[Message | msgspec.Raw], bool]:
        """``pull`` for a frame: hot groups are served from their recent cache, for members this node's
        roster names, as the JSON the cache holds (``msgspec.Raw``, encoded into the frame as it is); every
        other pull is authorized and read by the database."""
        served = await self.hot.pull(user_id, conv, after_seq, max(1, min(limit, 200)))
        if served is not None:
            found, more = served
            self.trace.pulled_encoded(user_id, conv, after_seq, found)
            shown = await self.hidden.mask_encoded(user_id, conv, found)
            return [msgspec.Raw(m) if isinstance(m, bytes) else m for m in shown], more
        return await self.pull(user_id, conv, after_seq, limit)

    async def pull(self, user_id: int, conv: str, after_seq: int, limit: int) -> tuple[list[Message], bool]:
        _, min_seq = await self._membership(user_id, conv)
        limit = max(1, min(limit, 200))
        found = await self.storage.messages_after(conv, max(after_seq, min_seq), limit + 1)
        self.trace.pulled(user_id, conv, after_seq, found[:limit][-1].seq if found else None)
        return await hidden.mask(self.storage, user_id, conv, found[:limit]), len(found) > limit

    async def history(
        self, user_id: int, conv: str, before_seq: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        _, min_seq = await self._membership(user_id, conv)
        limit = max(1, min(limit, 200))
        found = await self.storage.messages_before(conv, before_seq or 2**62, limit + 1, min_seq)
        return await hidden.mask(self.storage, user_id, conv, found[-limit:]), len(found) > limit

    async def conversations(self, user_id: int) -> list[Conversation]:
        states = await self.storage.conversations_of(user_id)
        peers_read = await self.storage.peer_read_seqs(user_id)
        return [
            Conversation(
                conv=state.conv,
                peer=peer_of(state.conv, user_id),
                max_seq=state.max_seq,
                read_seq=state.read_seq,
                peer_read_seq=peers_read.get(state.conv, 0),
                unread=state.unread,
                last=state.last,
                mention=state.mention_seq > state.read_seq,
                group=parse_group(state.conv),
                dnd=state.dnd,
                floor=state.purged_seq,
            )
            for state in states
        ]

    async def mark_read(self, user_id: int, conv: str, seq: int) -> int:
        await self._membership(user_id, conv)
        read_seq = await self.storage.set_read_seq(conv, user_id, seq)
        if read_seq is None:
            raise not_found("conversation")
        self.trace.read(user_id, conv, read_seq)
        # In a private chat the peer gets a receipt; in a group only the reader's other terminals hear of it
        # (group receipts are asked for per message, so a read never fans out to thousands).
        recipients = _members_of(conv) or (user_id,)
        await self.routing.publish([pushes.read(conv, user_id, read_seq, recipients)])
        return read_seq

    async def typing(self, user_id: int, conv: str) -> None:
        """Tell the peer that ``user_id`` is typing, if ``user_id`` could send there now.

        Typing is admitted exactly like a private send (``_private_conv``: a member of the conversation, and a
        friend of the peer unless the server lets strangers talk): an indicator must not reach someone who
        would refuse the message it announces. A refusal is an ``error`` frame with the send's code
        (``not_friends``, ``forbidden``, ``not_found``), so a client learns to stop sending them. Groups have
        no typing indicators (``forbidden``): they would fan out to every member.
        """
        if parse_group(conv) is not None:
            raise HubbubError(Code.FORBIDDEN, "typing indicators are for private conversations")
        private = await self._private_conv(user_id, None, conv)
        peer = peer_of(private, user_id)
        if peer is not None:
            await self.routing.publish([pushes.typing(private, user_id, (peer,))])

    # -- recall -----------------------------------------------------------------------------------
    async def recall(self, user_id: int, conv: str, seq: int, *, moderator: bool = False) -> Message:
        """Blank a message and append a ``recall`` notice, so clients that were offline learn it by sync.

        The sender may recall within the window; in groups the owner and admins may recall any message of a
        lower-ranked member at any time. The blanking and the notice are one transaction
        (``Storage.recall_message``), admitted inside it by the group rules: a frozen or dismissed group, or a
        recaller removed meanwhile, gets the refusal and the message stays as it was.

        ``moderator``: a server admin acting on a report (services/admin.py), as ``user_id`` (the server
        account): no membership, window or group-state check, so a frozen group's message can be recalled.
        """
        if not moderator:
            await self._membership(user_id, conv)
        target = await self.storage.message(conv, seq)
        if target is None or target.type in (RECALL_TYPE, "system"):
            raise not_found("message")
        own = target.sender == user_id
        group_id = parse_group(conv)
        if group_id is not None and not moderator:
            # The group's state answers before the roles do, as for every group action (group_rules.py);
            # the transaction checks it again.
            group = await self.storage.group(group_id)
            refused = refusal(Action.RECALL if own else Action.RECALL_OTHERS, group) if group else None
            if refused is not None:
                raise refused
        if moderator:
            pass
        elif own:
            if not target.recalled and self.clock() - target.ts > self.config.recall_window_s * 1000:
                raise HubbubError(
                    Code.RECALL_EXPIRED, f"messages can be recalled for {self.config.recall_window_s} s"
                )
        else:
            await self._check_moderator(user_id, conv, target.sender)
        # The notice's cmid is derived from the target, so recalling twice yields the same notice.
        notice = NewMessage(
            id=self.ids.next(),
            conv=conv,
            sender=user_id,
            cmid=f"{SYSTEM_CMID_PREFIX}recall:{conv}:{seq}",
            type=RECALL_TYPE,
            body={"seq": seq},
            ts=self.clock(),
            members=_members_of(conv),
        )
        result = await self.storage.recall_message(seq, notice, None if moderator else admit_group_message)
        if isinstance(result, Rejected):
            raise result.error
        if not result.duplicate:
            if group_id is not None:  # it may be cached from a time the group was hot, on any node
                await self.hot.recalled(msgspec.structs.replace(target, recalled=True, body={}))
            await self._publish_stored([Queued(notice)], [result])
        return result.message

    async def _check_moderator(self, user_id: int, conv: str, sender: int) -> None:
        group_id = parse_group(conv)
        if group_id is None:
            raise HubbubError(Code.FORBIDDEN, "only the sender can recall a message")
        me = await self.storage.group_member(group_id, user_id)
        them = await self.storage.group_member(group_id, sender)
        their_role = them.role if them is not None else "member"
        if me is None or not allowed(Action.RECALL_OTHERS, me.role, their_role):
            raise HubbubError(Code.FORBIDDEN, "only the sender, or a group's owner and admins, can recall")

    async def close(self) -> None:
        await self.batcher.close()


def _silenced(item: NewMessage, quiet: tuple[int, ...]) -> tuple[int, ...]:
    """Of the recipients with do-not-disturb, those the message does not mention (docs/protocol.md)."""
    if not quiet or item.mention_all:
        return ()
    mentioned = set(item.mentions)
    return tuple(uid for uid in quiet if uid not in mentioned)


def _as_stored(item: NewMessage, message: Message) -> NewMessage:
    """A resend, described by the message it resends: its mentions are those the stored body carries (they
    were checked when it was stored), not whatever the resend claims."""
    mentions: tuple[int, ...] = ()
    mention_all = False
    if parse_group(message.conv) is not None:
        with contextlib.suppress(HubbubError):  # stored before a rule changed: no mention, still a push
            mentions, mention_all = content.mentions_of(message.body)
    return msgspec.structs.replace(
        item, conv=message.conv, body=message.body, mentions=mentions, mention_all=mention_all
    )


def _members_of(conv: str) -> tuple[int, ...]:
    pair = parse_private(conv)
    return pair if pair is not None else ()
