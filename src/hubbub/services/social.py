"""The social layer (issue 15): blocks, remarks, last-seen privacy, profiles as a viewer sees them, live
profile changes, chat preferences, the sessions list, and group read counts pushed to senders.

The rules are in ``social_rules`` (pure); this module reads and writes through ``SocialStorage`` and tells
the user's own sessions (and, for a profile, the people who see it) with the pushes of ``pushes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import group_conv, parse_group, peer_of
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import Group, User
from hubbub.core.periodic import Periodic
from hubbub.engines.registry.base import Registry, terminals_of
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_social import ChatPrefs, ChatPrefsChange, LastSeenPrivacy
from hubbub.protocol.close_codes import Close
from hubbub.services import pushes
from hubbub.services.friends import FriendService
from hubbub.services.groups import GroupService
from hubbub.services.social_rules import check_privacy, clean_remark, last_seen_visible

log = logging.getLogger(__name__)


class Blocked(msgspec.Struct, kw_only=True):
    user: User
    since: int


class Profile(msgspec.Struct, kw_only=True):
    """A user as the caller sees them."""

    user: User
    remark: str = ""
    friend: bool = False
    blocked: bool = False
    blocked_me: bool = False
    online: bool = False
    terminals: list[str] = msgspec.field(default_factory=list)
    last_seen: int | None = None


class Privacy(msgspec.Struct, kw_only=True):
    last_seen: LastSeenPrivacy


class SessionInfo(msgspec.Struct, kw_only=True):
    id: str
    created_at: int
    last_active: int
    current: bool


class SocialService:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        routing: Routing,
        registry: Registry,
        friends: FriendService,
        groups: GroupService,
        is_push_pull: Callable[[Group], bool],
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.registry = registry
        self.friends = friends
        self.groups = groups
        self.is_push_pull = is_push_pull
        self.read_counts = ReadCounts(config, storage, routing, is_push_pull)

    async def _other_user(self, me: int, target: int, field: str) -> User:
        if target == me:
            raise invalid(field, "not yourself")
        user = (await self.storage.users([target])).get(target)
        if user is None or user.deleted:
            raise not_found("user")
        if user.system:
            raise invalid(field, "not the server account")
        return user

    # -- blocks -------------------------------------------------------------------------------------
    async def block(self, me: int, target: int) -> Blocked:
        user = await self._other_user(me, target, "user")
        since = await self.storage.block(me, target, now_ms())
        await self.friends.block_changed(me, target)
        events = [pushes.block(me, "blocked", user)]
        if await self.storage.are_friends(me, target):
            events.append(pushes.presence(me, (), [target]))  # I vanish from their view at once
        await self.routing.publish(events)
        return Blocked(user=user, since=since)

    async def unblock(self, me: int, target: int) -> None:
        users = await self.storage.users([target])
        if not await self.storage.unblock(me, target):
            return
        await self.friends.block_changed(me, target)
        events = []
        if target in users:
            events.append(pushes.block(me, "unblocked", users[target]))
        if await self.storage.are_friends(me, target):
            mine = (await self.registry.presence([me])).get(me, ())
            if mine:
                events.append(pushes.presence(me, terminals_of(mine), [target]))
        await self.routing.publish(events)

    async def blocks(self, me: int) -> list[Blocked]:
        return [Blocked(user=u, since=since) for u, since in await self.storage.blocks(me)]

    # -- remarks and privacy ------------------------------------------------------------------------
    async def set_remark(self, me: int, target: int, remark: object) -> str:
        if not isinstance(remark, str):
            raise invalid("remark", "must be a string")
        await self._other_user(me, target, "user")
        clean = clean_remark(remark)
        await self.storage.set_remark(me, target, clean)
        await self.routing.publish([pushes.remark(me, target, clean)])
        return clean

    async def privacy(self, me: int) -> Privacy:
        return Privacy(last_seen=(await self.storage.social([me]))[me].privacy)

    async def set_privacy(self, me: int, last_seen: object) -> Privacy:
        value = check_privacy(last_seen)
        await self.storage.set_last_seen_privacy(me, value)
        return Privacy(last_seen=value)

    async def profile(self, me: int, target: int) -> Profile:
        user = (await self.storage.users([target])).get(target)
        if user is None:
            raise not_found("user")
        if target == me:
            online = (await self.registry.presence([me])).get(me, ())
            return Profile(user=user, online=bool(online), terminals=list(terminals_of(online)))
        friend = await self.storage.are_friends(me, target)
        blocked_me = bool(await self.storage.blockers_among(me, [target]))
        blocked = bool(await self.storage.blockers_among(target, [me]))
        remark = (await self.storage.remarks(me, [target])).get(target, "")
        slots = () if blocked_me else (await self.registry.presence([target])).get(target, ())
        social = (await self.storage.social([target]))[target]
        seen = None
        if (
            not slots
            and social.last_seen
            and last_seen_visible(social.privacy, friends=friend, blocked=blocked_me)
        ):
            seen = social.last_seen
        return Profile(
            user=user,
            remark=remark,
            friend=friend,
            blocked=blocked,
            blocked_me=blocked_me,
            online=bool(slots),
            terminals=list(terminals_of(slots)),
            last_seen=seen,
        )

    # -- live profile changes -----------------------------------------------------------------------
    async def profile_changed(self, user: User) -> None:
        """Push the new profile to the user's sessions, friends and fellow members of small groups that are
        not push-pull: bounded per group by ``profile_push_group_limit`` (hot groups see it on next fetch)."""
        audience = {user.id, *await self.storage.friend_ids(user.id)}
        limit = self.config.profile_push_group_limit
        for group in await self.storage.groups_of(user.id):
            if group.dismissed or group.member_count > limit or self.is_push_pull(group):
                continue
            audience.update(await self.storage.member_floors(group.conv))
        await self.routing.publish([pushes.profile(user, sorted(audience))])

    # -- chat preferences ---------------------------------------------------------------------------
    async def _check_conv(self, me: int, conv: str) -> int | None:
        """The group id of ``conv`` if a group; refuses a conversation that is not mine."""
        group_id = parse_group(conv)
        if group_id is not None:
            if await self.storage.group_member(group_id, me) is None:
                raise HubbubError(Code.FORBIDDEN, "not your conversation")
            return group_id
        if peer_of(conv, me) is None:
            raise HubbubError(Code.FORBIDDEN, "not your conversation")
        return None

    async def set_prefs(self, me: int, conv: str, change: ChatPrefsChange) -> ChatPrefs:
        group_id = await self._check_conv(me, conv)
        prefs = await self.storage.set_chat_prefs(me, conv, change, now_ms(), self.config.max_pinned_chats)
        if group_id is not None and change.muted is not None:
            await self.groups.set_prefs(me, group_id, {"dnd": change.muted})  # one setting, two names
        await self.routing.publish([pushes.prefs(me, prefs)])
        return prefs

    async def mirror_group_mute(self, me: int, group_id: int, dnd: bool) -> None:
        """A group's do-not-disturb was set directly: keep the chat preference ``muted`` equal to it."""
        conv = group_conv(group_id)
        change = ChatPrefsChange(muted=dnd)
        prefs = await self.storage.set_chat_prefs(me, conv, change, now_ms(), self.config.max_pinned_chats)
        await self.routing.publish([pushes.prefs(me, prefs)])

    async def chat_prefs(self, me: int) -> list[ChatPrefs]:
        return await self.storage.chat_prefs(me)

    async def on_read(self, user_id: int, conv: str, seq: int) -> None:
        """After a read is stored: clear a "marked unread", and note the group for a read-count push."""
        cleared = await self.storage.clear_marked_unread(user_id, conv, now_ms())
        if cleared is not None:
            await self.routing.publish([pushes.prefs(user_id, cleared)])
        self.read_counts.note(conv)

    # -- sessions -----------------------------------------------------------------------------------
    async def sessions(self, me: int, current_sid: str) -> list[SessionInfo]:
        rows = await self.storage.live_sessions(me, now_ms())
        return [
            SessionInfo(
                id=r.sid, created_at=r.created_at, last_active=r.last_active, current=r.sid == current_sid
            )
            for r in rows
        ]

    async def session_seen(self, sid: str) -> None:
        await self.storage.touch_session(sid, now_ms())

    async def end_session(self, me: int, sid: str) -> None:
        if not await self.storage.revoke_user_session(me, sid):
            raise not_found("session")
        await self.routing.disconnect(me, Close.REVOKED, "session ended", sid=sid)

    async def end_other_sessions(self, me: int, current_sid: str) -> int:
        ended = await self.storage.revoke_sessions(me, keep_sid=current_sid)
        for sid in ended:
            await self.routing.disconnect(me, Close.REVOKED, "logged out from another session", sid=sid)
        return len(ended)

    async def start(self) -> None:
        self.read_counts.start()

    async def close(self) -> None:
        await self.read_counts.stop()


class ReadCounts:
    """Group read counts pushed to senders, coalesced: reads only mark their group; once per window each
    marked small group's recent messages are counted and each sender whose counts changed gets one frame.

    Bounded: groups above ``receipt_push_max_members`` or push-pull are skipped (no frame per reader, ever);
    per flush a group costs one page read and at most ``RECENT`` count queries. Each node flushes the reads
    it took; the counts are absolute, so two nodes sending the same count is harmless."""

    RECENT = 20
    _MEMO_MAX = 50_000

    def __init__(
        self, config: Config, storage: Storage, routing: Routing, is_push_pull: Callable[[Group], bool]
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.is_push_pull = is_push_pull
        self._pending: set[str] = set()
        #: (conv, seq) -> (read, total) last pushed, so an unchanged count is not sent again.
        self._sent: dict[tuple[str, int], tuple[int, int]] = {}
        self._flusher = Periodic(
            "read-counts", max(0.05, config.receipt_push_window_ms / 1000), self.flush, quiet=(HubbubError,)
        )

    def note(self, conv: str) -> None:
        if parse_group(conv) is not None:
            self._pending.add(conv)

    def start(self) -> None:
        self._flusher.start()

    async def stop(self) -> None:
        await self._flusher.stop()

    async def flush(self) -> None:
        pending, self._pending = self._pending, set()
        for conv in pending:
            try:
                await self._flush_group(conv)
            except HubbubError as exc:
                log.warning("read counts of %s not pushed: %s", conv, exc.message)
            await asyncio.sleep(0)

    async def _flush_group(self, conv: str) -> None:
        group_id = parse_group(conv)
        assert group_id is not None
        group = await self.storage.group(group_id)
        if (
            group is None
            or group.member_count > self.config.receipt_push_max_members
            or self.is_push_pull(group)
        ):
            return
        recent = await self.storage.messages_before(conv, 2**53, self.RECENT, 0)
        by_sender: dict[int, list[tuple[int, int, int]]] = {}
        for message in recent:
            if message.type in ("system", "recall") or message.recalled:
                continue
            read, total, _ = await self.storage.readers(conv, message.seq, message.sender, 0)
            key = (conv, message.seq)
            if self._sent.get(key) == (read, total):
                continue
            if len(self._sent) >= self._MEMO_MAX:
                self._sent.clear()
            self._sent[key] = (read, total)
            by_sender.setdefault(message.sender, []).append((message.seq, read, total))
        if by_sender:
            await self.routing.publish(
                [pushes.read_counts(conv, sender, counts) for sender, counts in by_sender.items()]
            )
