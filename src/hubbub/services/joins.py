"""Joining a group without an invite: join links (and their QR codes), join requests, the public directory
(docs/protocol.md, "Join links and the group directory").

A join is a group change like any other: it goes through ``Storage.change_group`` with its ``joined`` system
message (``body.via``: ``link`` or ``directory``), under the group rules' ``join`` state check inside the
writing transaction (a frozen or dismissed group refuses it) and the member cap, then
``GroupService.announce``, so rosters, hot-group state and every member's history stay right.

- A **link** is revocable and may have an expiry and a use limit. A use is taken atomically before the join
  and given back if the join is then refused (frozen group, group full), so a refused join uses nothing up.
- A group with ``join_approval`` turns a join (by link or from the directory) into a **request**; the
  owner or an admin approves (the join happens then, as the approver's change) or declines it.
- A **public** group is listed in the directory (``GET /api/v1/groups/directory``) and joinable from it.
- Someone who is already a member just gets the group back; nothing is counted or written.
"""

from __future__ import annotations

import secrets
import uuid
from typing import Any

import msgspec

from hubbub.core.clock import now_ms
from hubbub.core.convs import group_conv
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import Group
from hubbub.engines.storage.base import GroupChange, NewMessage, Storage
from hubbub.engines.storage.base_access import GroupLink, JoinRequest
from hubbub.engines.storage.sql_access import link_refusal
from hubbub.services.group_rules import Action, allowed, refusal
from hubbub.services.groups import SYSTEM_TYPE, GroupService

MAX_LINK_TTL_S = 365 * 24 * 3600
MAX_LINK_USES = 100_000
MAX_LINKS_PER_GROUP = 100


class GroupCard(msgspec.Struct, kw_only=True):
    """What a non-member may see of a group they were given a link to, or found in the directory."""

    id: int
    name: str
    avatar: str | None
    member_count: int
    public: bool
    join_approval: bool


class LinkCard(msgspec.Struct, kw_only=True):
    code: str
    group: GroupCard
    #: The caller is already a member.
    member: bool
    expires_at: int


class JoinResult(msgspec.Struct, kw_only=True):
    """Either the group (joined, or already a member) or the pending request (the group needs approval)."""

    group: Group | None = None
    request: JoinRequest | None = None


def card_of(group: Group) -> GroupCard:
    return GroupCard(
        id=group.id,
        name=group.name,
        avatar=group.avatar,
        member_count=group.member_count,
        public=group.public,
        join_approval=group.join_approval,
    )


def _link_error(reason: str) -> HubbubError:
    return HubbubError(Code.LINK_INVALID, f"this join link cannot be used ({reason})", reason=reason)


class JoinService:
    def __init__(self, storage: Storage, groups: GroupService) -> None:
        self.storage = storage
        self.groups = groups

    # -- links ------------------------------------------------------------------------------------
    async def _manager(self, me: int, group_id: int, action: Action) -> Group:
        group, member = await self.groups._acting(group_id, me, action)
        if not allowed(action, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner and admins can do this")
        return group

    async def create_link(self, me: int, group_id: int, max_uses: int, ttl_s: int) -> GroupLink:
        await self._manager(me, group_id, Action.MANAGE_LINKS)
        if not 0 <= max_uses <= MAX_LINK_USES:
            raise invalid("max_uses", f"0 (no limit) to {MAX_LINK_USES}")
        if not 0 <= ttl_s <= MAX_LINK_TTL_S:
            raise invalid("ttl_s", f"0 (never expires) to {MAX_LINK_TTL_S}")
        if len(await self.storage.links(group_id)) >= MAX_LINKS_PER_GROUP:
            raise HubbubError(Code.CONFLICT, f"a group has at most {MAX_LINKS_PER_GROUP} live links")
        now = now_ms()
        link = GroupLink(
            code=secrets.token_urlsafe(12),
            group_id=group_id,
            created_by=me,
            max_uses=max_uses,
            expires_at=now + ttl_s * 1000 if ttl_s else 0,
            created_at=now,
        )
        return await self.storage.create_link(link)

    async def links(self, me: int, group_id: int) -> list[GroupLink]:
        await self._manager(me, group_id, Action.MANAGE_LINKS)
        return await self.storage.links(group_id)

    async def revoke_link(self, me: int, group_id: int, code: str) -> None:
        """Allowed in every state the group can be managed in, and for a frozen group too: revoking only
        takes a way in away."""
        group, member = await self.groups._member(group_id, me)
        if not allowed(Action.MANAGE_LINKS, member.role):
            raise HubbubError(Code.FORBIDDEN, "only the owner and admins can do this")
        if not await self.storage.revoke_link(group_id, code):
            raise not_found("link")

    async def preview(self, me: int, code: str) -> LinkCard:
        link = await self.storage.link(code)
        reason = link_refusal(link, now_ms())
        if reason is not None or link is None:
            raise _link_error(reason or "unknown")
        group = await self.storage.group(link.group_id)
        if group is None:
            raise _link_error("unknown")
        member = await self.storage.group_member(group.id, me) is not None
        return LinkCard(code=code, group=card_of(group), member=member, expires_at=link.expires_at)

    # -- joining ----------------------------------------------------------------------------------
    async def join_by_link(self, me: int, code: str) -> JoinResult:
        link = await self.storage.link(code)
        reason = link_refusal(link, now_ms())
        if reason is not None or link is None:
            raise _link_error(reason or "unknown")
        return await self._join(me, link.group_id, code)

    async def join_public(self, me: int, group_id: int) -> JoinResult:
        group = await self.storage.group(group_id)
        if group is None or not group.public:
            raise not_found("group")
        return await self._join(me, group_id, "")

    async def directory(self, query: str, after: int, limit: int) -> list[GroupCard]:
        if len(query) > 64:
            raise invalid("q", "at most 64 characters")
        found = await self.storage.find_groups(
            query.strip(), after, max(1, min(limit, 100)), public_only=True
        )
        return [card_of(g) for g in found]

    async def _join(self, me: int, group_id: int, code: str) -> JoinResult:
        group = await self.storage.group(group_id)
        if group is None:
            raise not_found("group")
        if await self.storage.group_member(group_id, me) is not None:
            return JoinResult(group=await self.groups.profile(me, group_id))
        refused = refusal(Action.JOIN, group)
        if refused is not None:
            raise refused
        if group.join_approval and (pending := await self.storage.pending_join_request(group_id, me)):
            return JoinResult(request=pending)  # asking again counts nothing
        if code and not await self.storage.take_link_use(code, now_ms()):
            raise _link_error(link_refusal(await self.storage.link(code), now_ms()) or "used_up")
        try:
            if group.join_approval:
                request = await self.storage.create_join_request(group_id, me, code, now_ms())
                return JoinResult(request=request)
            await self._add(group, me, me, {"via": "link" if code else "directory"})
        except BaseException:
            if code:
                await self.storage.give_back_link_use(code)
            raise
        return JoinResult(group=await self.groups.profile(me, group_id))

    async def _add(self, group: Group, user_id: int, actor: int, extra: dict[str, Any]) -> Group:
        """The join itself: one group change with its ``joined`` notice, checked in the transaction."""
        notice = NewMessage(
            id=self.groups.ids.next(),
            conv=group_conv(group.id),
            sender=actor,
            cmid=f"~g:{uuid.uuid4().hex}",
            type=SYSTEM_TYPE,
            body={"event": "joined", "users": [user_id], "actor": actor, **extra},
            ts=now_ms(),
        )
        change = GroupChange(add={user_id: "member"}, max_members=self.groups.hot.policy.max_members(group))
        update = await self.storage.change_group(group.id, change, notice, lambda g: refusal(Action.JOIN, g))
        await self.groups.announce(update)
        return update.group

    # -- requests ---------------------------------------------------------------------------------
    async def requests(self, me: int, group_id: int) -> list[JoinRequest]:
        await self._manager(me, group_id, Action.ANSWER_REQUESTS)
        return await self.storage.join_requests(group_id, "pending", 200)

    async def answer(self, me: int, group_id: int, request_id: int, approve: bool) -> JoinRequest:
        """Approve (the requester joins, as the approver's change) or decline a pending request. The join
        is stored before the request is marked, so a refused join (frozen, full) leaves it pending."""
        group = await self._manager(me, group_id, Action.ANSWER_REQUESTS)
        request = await self.storage.join_request(request_id)
        if request is None or request.group_id != group_id:
            raise not_found("request")
        if request.status != "pending":
            raise HubbubError(Code.CONFLICT, f"this request was already {request.status}")
        if approve:
            record = await self.storage.user_record(request.user.id)
            if record is None or record.banned:
                raise HubbubError(Code.CONFLICT, "this user is banned and cannot join")
            if await self.storage.group_member(group_id, request.user.id) is None:
                await self._add(group, request.user.id, me, {"via": "request"})
        status = "approved" if approve else "declined"
        await self.storage.decide_join_request(request_id, status, me, now_ms())
        found = await self.storage.join_request(request_id)
        assert found is not None
        return found
