"""Groups: create, invite, kick, quit, dismiss, ownership, admins, mutes, profile, member settings.

Every change that members should see is a ``system`` message in the group's own seq, stored in the same
transaction as the change (``Storage.change_group``), so history and sync show "A invited B" exactly where it
happened, and a member sees the group from the notice of their own joining on.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import msgspec

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.convs import group_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.ids import MessageIds
from hubbub.core.models import Group, GroupMember
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.registry.base import Registry, terminals_of
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import GroupChange, GroupUpdate, NewMessage, Storage
from hubbub.services import pushes
from hubbub.services.friends import FriendService
from hubbub.services.group_rules import Action, allowed, refusal
from hubbub.services.hot import HotGroups
from hubbub.services.limits import enforce
from hubbub.services.media import MediaService
from hubbub.services.names import clean_nickname, visible

SYSTEM_TYPE = "system"
MAX_MUTE_S = 30 * 24 * 3600
_TEXT_LIMITS = {"name": (1, 64), "notice": (0, 1024), "avatar": (0, 128)}


class GroupService:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        routing: Routing,
        registry: Registry,
        limiter: RateLimiter,
        friends: FriendService,
        ids: MessageIds,
        hot: HotGroups,
        media: MediaService,
    ) -> None:
        self.media = media
        self.config = config
        #: Told the conversation of every group notice stored here ("X joined"), after its publish: the
        #: root subscribes the webhook dispatcher (``member`` events), so groups know nothing of webhooks.
        self.on_notice: list[Callable[[str], None]] = []
        self.hot = hot
        self.storage = storage
        self.routing = routing
        self.registry = registry
        self.limiter = limiter
        self.friends = friends
        self.ids = ids

    # -- reading ----------------------------------------------------------------------------------
    async def _member(self, group_id: int, user_id: int) -> tuple[Group, GroupMember]:
        """The group and the caller's membership; non-members get not_found (no leak of private groups)."""
        group = await self.storage.group(group_id)
        member = await self.storage.group_member(group_id, user_id) if group else None
        if group is None or member is None:
            raise not_found("group")
        return self.hot.policy.describe(group), member

    async def _acting(self, group_id: int, user_id: int, action: Action) -> tuple[Group, GroupMember]:
        """The group and the caller's membership, if the group's state allows ``action`` (group_rules.py).

        Checked here so a refused request does no more work, and again inside the writing transaction
        (``_apply``), where it is authoritative.
        """
        group, member = await self._member(group_id, user_id)
        refused = refusal(action, group)
        if refused is not None:
            raise refused
        return group, member

    async def profile(self, me: int, group_id: int) -> Group:
        group, member = await self._member(group_id, me)
        return msgspec.structs.replace(group, me=member)

    async def my_groups(self, me: int) -> list[Group]:
        return [self.hot.policy.describe(group) for group in await self.storage.groups_of(me)]

    async def members(
        self, me: int, group_id: int, after: int, limit: int, prefix: str = ""
    ) -> list[GroupMember]:
        await self._member(group_id, me)
        if len(prefix) > 32:
            raise invalid("q", "at most 32 characters")
        page = await self.storage.group_members(group_id, after, max(1, min(limit, 200)), prefix.strip())
        # Do-not-disturb is a member's own setting: others see it as false (docs/protocol.md).
        return [m if m.user.id == me or not m.dnd else msgspec.structs.replace(m, dnd=False) for m in page]

    async def online(
        self, me: int, group_id: int, after: int, limit: int
    ) -> tuple[dict[int, tuple[str, ...]], int | None]:
        """Presence of a page of members, on request (friends get live events; group members are asked for,
        so a big group's comings and goings are not pushed to everyone). Returns (online, next ``after``)."""
        await self._member(group_id, me)
        limit = max(1, min(limit, 200))
        page = await self.storage.group_members(group_id, after, limit)
        found = await self.registry.presence([m.user.id for m in page])
        # Terminal classes, never device ids; members who block me show offline to me (issue 15).
        hidden = await self.storage.blockers_among(me, list(found))
        online = {uid: terminals_of(slots) for uid, slots in found.items() if uid not in hidden}
        return online, page[-1].user.id if len(page) == limit else None

    async def receipts(self, me: int, group_id: int, seq: int) -> tuple[int, int, list[int]]:
        """Who of the other members read message ``seq`` (the sender is not counted; nor are members who
        joined after it, who never saw it).

        Only for messages in the caller's own window: one from before they joined is ``not_found``, as it is
        to ``history`` and ``pull``. Bounded in cost: two counts over an index and at most 100 reader ids,
        whatever the group's size.
        """
        await self._member(group_id, me)
        conv = group_conv(group_id)
        state = await self.storage.member_state(conv, me)
        message = await self.storage.message(conv, seq)
        if message is None or state is None or seq <= state[1]:
            raise not_found("message")
        return await self.storage.readers(conv, seq, message.sender, 100)

    # -- changes ----------------------------------------------------------------------------------
    async def create(self, me: int, fields: dict[str, Any], members: list[int]) -> Group:
        await enforce(
            self.limiter,
            f"group-create:{me}",
            self.config.group_create_per_hour / 3600,
            self.config.group_create_per_hour,
        )
        clean = await self._check_avatar(me, _check_fields(fields, required=("name",)))
        invited = sorted(set(members) - {me})
        limit = self.hot.policy.max_members(None)
        if len(invited) + 1 > limit:
            raise HubbubError(Code.CONFLICT, f"a group has at most {limit} members")
        await self._check_invitable(me, invited)
        update = await self.storage.create_group(
            me,
            clean,
            invited,
            self._notice(me, "", {"event": "created", "name": clean["name"], "users": invited}),
        )
        await self.announce(update)
        return update.group

    async def invite(self, me: int, group_id: int, users: list[int]) -> Group:
        group, member = await self._acting(group_id, me, Action.INVITE)
        if not allowed(Action.INVITE, member.role, invite_policy=group.invite_policy):
            raise HubbubError(Code.FORBIDDEN, "only admins can invite to this group")
        if not users or len(users) > 500:
            raise invalid("users", "1 to 500 user ids")
        invited = sorted(set(users) - {me})
        await self._check_invitable(me, invited)
        limit = self.hot.policy.max_members(group)  # only the owner's hot flag lifts the cap
        change = GroupChange(add=dict.fromkeys(invited, "member"), max_members=limit)
        return await self._apply(group_id, change, me, {"event": "joined", "users": invited}, Action.INVITE)

    async def kick(self, me: int, group_id: int, user_id: int) -> Group:
        group, member = await self._acting(group_id, me, Action.KICK)
        target = await self.storage.group_member(group_id, user_id)
        if target is None:
            raise not_found("member")
        if user_id == me or not allowed(Action.KICK, member.role, target.role):
            raise HubbubError(Code.FORBIDDEN, f"a {member.role} cannot remove a {target.role}")
        return await self._apply(
            group_id, GroupChange(remove=(user_id,)), me, {"event": "kicked", "users": [user_id]}, Action.KICK
        )

    async def quit(self, me: int, group_id: int) -> None:
        group, member = await self._acting(group_id, me, Action.QUIT)
        if not allowed(Action.QUIT, member.role):
            raise HubbubError(Code.FORBIDDEN, "the owner must transfer ownership or dismiss the group")
        change = GroupChange(remove=(me,))
        await self._apply(group_id, change, me, {"event": "left", "users": [me]}, Action.QUIT)

    async def dismiss(self, me: int, group_id: int) -> None:
        group, member = await self._acting(group_id, me, Action.DISMISS)
        if not allowed(Action.DISMISS, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner can dismiss the group")
        change = GroupChange(fields={"dismissed": True})
        await self._apply(group_id, change, me, {"event": "dismissed"}, Action.DISMISS)

    async def transfer(self, me: int, group_id: int, user_id: int) -> Group:
        group, member = await self._acting(group_id, me, Action.TRANSFER)
        if not allowed(Action.TRANSFER, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner can transfer ownership")
        if user_id == me or await self.storage.group_member(group_id, user_id) is None:
            raise not_found("member")
        change = GroupChange(roles={me: "admin", user_id: "owner"}, fields={"owner_id": user_id})
        event = {"event": "owner_changed", "users": [user_id]}
        return await self._apply(group_id, change, me, event, Action.TRANSFER)

    async def set_admin(self, me: int, group_id: int, user_id: int, admin: bool) -> Group:
        group, member = await self._acting(group_id, me, Action.SET_ADMIN)
        if not allowed(Action.SET_ADMIN, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner can appoint or remove admins")
        target = await self.storage.group_member(group_id, user_id)
        if target is None or target.role == "owner":
            raise not_found("member")
        role = "admin" if admin else "member"
        if target.role == role:
            return group
        event = "admin_added" if admin else "admin_removed"
        return await self._apply(
            group_id,
            GroupChange(roles={user_id: role}),
            me,
            {"event": event, "users": [user_id]},
            Action.SET_ADMIN,
        )

    async def mute(self, me: int, group_id: int, user_id: int, seconds: int) -> Group:
        group, member = await self._acting(group_id, me, Action.MUTE)
        if not 0 <= seconds <= MAX_MUTE_S:
            raise invalid("seconds", f"0 (unmute) to {MAX_MUTE_S}")
        target = await self.storage.group_member(group_id, user_id)
        if target is None:
            raise not_found("member")
        if not allowed(Action.MUTE, member.role, target.role):
            raise HubbubError(Code.FORBIDDEN, f"a {member.role} cannot mute a {target.role}")
        until = now_ms() + seconds * 1000 if seconds else 0
        event = {"event": "muted" if seconds else "unmuted", "users": [user_id], "until": until}
        return await self._apply(group_id, GroupChange(mutes={user_id: until}), me, event, Action.MUTE)

    async def mute_all(self, me: int, group_id: int, muted: bool) -> Group:
        group, member = await self._acting(group_id, me, Action.MUTE_ALL)
        if not allowed(Action.MUTE_ALL, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner and admins can mute everyone")
        if group.muted_all == muted:
            return group
        event = {"event": "muted_all" if muted else "unmuted_all"}
        change = GroupChange(fields={"muted_all": muted})
        return await self._apply(group_id, change, me, event, Action.MUTE_ALL)

    async def edit(self, me: int, group_id: int, fields: dict[str, Any]) -> Group:
        policy = {"invite_policy", "public", "join_approval", "pin_policy"} & set(fields)
        action = Action.SET_POLICY if policy else Action.EDIT_PROFILE
        group, member = await self._acting(group_id, me, action)
        if not fields:
            return group
        if not allowed(action, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner and admins can edit the group")
        clean = await self._check_avatar(me, _check_fields(fields))
        changed = {k: v for k, v in clean.items() if k != "avatar_by" and getattr(group, k) != v}
        if not changed:
            return group
        stored = {**changed, "avatar_by": clean["avatar_by"]} if "avatar" in changed else changed
        return await self._apply(
            group_id, GroupChange(fields=stored), me, {"event": "edited", "changes": changed}, action
        )

    async def set_prefs(self, me: int, group_id: int, fields: dict[str, Any]) -> GroupMember:
        """Personal settings. The group nickname is seen by others, so a frozen or dismissed group refuses
        it; do-not-disturb is the member's own and allowed in every state."""
        if "nickname" in fields:
            await self._acting(group_id, me, Action.SET_NICKNAME)
        else:
            await self._member(group_id, me)
        clean: dict[str, Any] = {}
        if "nickname" in fields:
            nickname = fields["nickname"]
            if not isinstance(nickname, str):
                raise invalid("nickname", "must be a string")
            # The account nickname's rule (names.py), except that "" clears the group nickname.
            clean["nickname"] = clean_nickname(nickname) if visible(nickname) else ""
        if "dnd" in fields:
            if not isinstance(fields["dnd"], bool):
                raise invalid("dnd", "must be true or false")
            clean["dnd"] = fields["dnd"]
        updated = await self.storage.set_member_prefs(group_id, me, clean)
        if updated is None:
            raise not_found("group")
        return updated

    # -- helpers ----------------------------------------------------------------------------------
    async def _check_avatar(self, me: int, clean: dict[str, Any]) -> dict[str, Any]:
        """An avatar must be an image upload ``me`` may read; who set it is kept (``avatar_by``), since only
        an avatar its uploader set makes the upload public (docs/media.md)."""
        if "avatar" in clean:
            clean["avatar"] = await self.media.check_avatar(me, clean["avatar"])
            clean["avatar_by"] = me if clean["avatar"] is not None else None
        return clean

    async def _check_invitable(self, me: int, users: list[int]) -> None:
        """Only existing users who are the inviter's friends (no pulling strangers into groups)."""
        if not users:
            return
        found = await self.storage.users(users)
        missing = [u for u in users if u not in found]
        if missing:
            raise HubbubError(Code.NOT_FOUND, f"no such users: {missing[:10]}")
        for uid in users:
            if not await self.friends.are_friends(me, uid):
                raise HubbubError(Code.NOT_FRIENDS, f"user {uid} is not your friend")

    def _notice(self, actor: int, conv: str, body: dict[str, Any]) -> NewMessage:
        return NewMessage(
            id=self.ids.next(),
            conv=conv,
            sender=actor,
            cmid=f"~g:{uuid.uuid4().hex}",
            type=SYSTEM_TYPE,
            body={**body, "actor": actor},
            ts=now_ms(),
        )

    async def _apply(
        self, group_id: int, change: GroupChange, actor: int, body: dict[str, Any], action: Action
    ) -> Group:
        """Store the change and its notice, if the group's state still allows ``action`` when it is locked."""
        update = await self.storage.change_group(
            group_id, change, self._notice(actor, group_conv(group_id), body), lambda g: refusal(action, g)
        )
        await self.announce(update)
        return update.group

    async def announce(self, update: GroupUpdate) -> None:
        """The notice goes to members before and after the change: the kicked hear they were kicked.

        In a hot group the members get it like any hot message (news, then pull); only those who left get
        it pushed, since they can no longer pull. Every node hears of every change, hot group or not, so no
        node keeps a roster that no longer holds (services/hot/rosters.py).
        """
        message = update.stored.message
        push_pull = self.hot.policy.describe(update.group).push_pull
        await self.hot.group_changed(message, push_pull)
        if push_pull:
            gone = sorted(set(update.before) - set(update.after))
            if gone:
                await self.routing.publish(pushes.message(message, gone))
        else:
            await self.routing.publish(pushes.message(message, update.stored.recipients))
        for listener in self.on_notice:
            listener(message.conv)


def _check_fields(fields: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    clean: dict[str, Any] = {}
    for name in required:
        if name not in fields or fields[name] is None:
            raise invalid(name, "is required")
    for name, value in fields.items():
        if value is None and name in ("avatar",):
            clean[name] = None
            continue
        if name in ("hot", "public", "join_approval"):  # join settings: services/joins.py
            if not isinstance(value, bool):
                raise invalid(name, "must be true or false")
            clean[name] = value
            continue
        if name in ("invite_policy", "pin_policy"):
            if value not in ("members", "admins"):
                raise invalid(name, "'members' or 'admins'")
            clean[name] = value
            continue
        if name not in _TEXT_LIMITS:
            raise invalid(name, "not an editable group field")
        if not isinstance(value, str):
            raise invalid(name, "must be a string")
        low, high = _TEXT_LIMITS[name]
        value = value.strip()
        if not low <= len(value) <= high:
            raise invalid(name, f"must be {low} to {high} characters")
        clean[name] = value
    return clean
