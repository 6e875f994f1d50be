"""Friendship: requests with a note, accept, decline, remove, lists. Both sides hear every change live."""

from __future__ import annotations

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import Friend, FriendRequest
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.registry.base import Registry
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.services import pushes
from hubbub.services.broadcasts import Forget, encode_forget
from hubbub.services.limits import enforce
from hubbub.services.pair_cache import PairCache, pair
from hubbub.services.social_rules import last_seen_visible

# How long a node keeps an answer about a pair (seconds; jittered 0.7-1.3x): a positive friendship answer, and
# either answer to "does either block the other?" (issue 15). The send path asks both on every private
# message. A block, an unblock or a removed friendship drops the pair on every node at once (a ``Forget``
# broadcast, services/broadcasts.py); these lifetimes only bound how long a node that missed the broadcast
# (Redis unreachable at that moment) keeps a stale answer: a block's bound is the shorter, as it is about
# privacy. Short lifetimes cost a query per active pair every few seconds (a 2 s block cache was a third of the
# 1:1 benchmark's server time, docs/benchmarks.md).
FRIENDSHIP_CACHE_S = 60.0
BLOCK_CACHE_S = 10.0


class FriendService:
    def __init__(
        self, config: Config, storage: Storage, routing: Routing, registry: Registry, limiter: RateLimiter
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.registry = registry
        self.limiter = limiter
        # Only "friends" is cached: a "no" may become a "yes" on another node at any moment (an accept).
        self._friends = PairCache(storage.are_friends, FRIENDSHIP_CACHE_S, cache_false=False)
        self._blocks = PairCache(storage.blocking, BLOCK_CACHE_S)

    # -- the caches, on every node ----------------------------------------------------------------
    def forget(self, forget: Forget) -> None:
        """Drop the cached answers of these pairs (a ``Forget`` broadcast from any node, this one included).

        A query already under way may have read the database before the change committed: its answer is
        still returned to whoever asked first, but not cached, and later callers do not join it."""
        for a, b in forget.blocks:
            self._blocks.forget(a, b)
        for a, b in forget.friendships:
            self._friends.forget(a, b)

    async def _tell(self, forget: Forget) -> None:
        """After the change committed: forget on every node. ``Routing.broadcast`` hands the payload to this
        node's own listener first and synchronously (its contract), so this node forgets before the call
        returns, even when the other nodes cannot be reached."""
        await self.routing.broadcast(encode_forget(forget))

    # -- blocks (issue 15) ------------------------------------------------------------------------
    async def blocking(self, a: int, b: int) -> bool:
        """Whether either of the two blocked the other (cached ``BLOCK_CACHE_S``: the send path asks)."""
        return await self._blocks.get(a, b)

    async def block_changed(self, a: int, b: int) -> None:
        """A block between the two was made or lifted (committed): every node applies it from now on."""
        await self._tell(Forget(blocks=(pair(a, b),)))

    async def check_not_blocked(self, me: int, other: int) -> None:
        """``blocked`` if either blocked the other: no message, request or call passes a block."""
        if await self.blocking(me, other):
            raise HubbubError(Code.BLOCKED, "you cannot reach this user: one of you blocked the other")

    async def are_friends(self, a: int, b: int) -> bool:
        return await self._friends.get(a, b)

    async def request(self, me: int, to: int, note: str) -> FriendRequest:
        if len(note) > 256:
            raise invalid("note", "at most 256 characters")
        if to == me:
            raise invalid("to", "you cannot befriend yourself")
        await enforce(self.limiter, f"friend-req:{me}", 20 / 3600, 20)
        target = (await self.storage.users([to])).get(to)
        if target is None:
            raise not_found("user")
        await self.check_not_blocked(me, to)
        if await self.storage.are_friends(me, to):
            raise HubbubError(Code.CONFLICT, "already friends")
        reverse = await self.storage.pending_request(to, me)
        if reverse is not None:
            # They already asked us: asking back is saying yes.
            return await self.accept(me, reverse.id)
        if await self.storage.pending_request(me, to) is not None:
            raise HubbubError(Code.CONFLICT, "a request to this user is already pending")
        request = await self.storage.create_friend_request(me, to, note.strip(), now_ms())
        await self.routing.publish([pushes.friend("request", [me, to], request=request)])
        if target.bot:  # a bot is a service anyone may add (docs/integrations.md): it says yes at once
            return await self.accept(to, request.id)
        return request

    async def accept(self, me: int, request_id: int) -> FriendRequest:
        request = await self._pending_for(me, request_id)
        # One transaction: a failure between answering and befriending used to leave the request accepted
        # and the two users strangers.
        if not await self.storage.accept_friend_request(request_id, now_ms()):
            raise HubbubError(Code.CONFLICT, "this request was already answered")
        accepted = _with_status(request, "accepted")
        await self.routing.publish(
            [
                pushes.friend("accepted", [request.from_user.id], request=accepted, user=request.to_user),
                pushes.friend("accepted", [request.to_user.id], request=accepted, user=request.from_user),
            ]
        )
        return accepted

    async def decline(self, me: int, request_id: int) -> FriendRequest:
        request = await self._pending_for(me, request_id)
        if not await self.storage.answer_friend_request(request_id, "declined"):
            raise HubbubError(Code.CONFLICT, "this request was already answered")
        declined = _with_status(request, "declined")
        await self.routing.publish([pushes.friend("declined", [request.from_user.id, me], request=declined)])
        return declined

    async def remove(self, me: int, friend_id: int) -> None:
        if not await self.storage.remove_friendship(me, friend_id):
            raise not_found("friend")
        await self._tell(Forget(friendships=(pair(me, friend_id),)))
        people = await self.storage.users([me, friend_id])
        await self.routing.publish(
            [
                pushes.friend("removed", [me], user=people.get(friend_id)),
                pushes.friend("removed", [friend_id], user=people.get(me)),
            ]
        )

    async def friendships_ended(self, user_id: int, others: list[int]) -> None:
        """Friendships of ``user_id`` were deleted (account closing): every node forgets them."""
        if others:
            await self._tell(Forget(friendships=tuple(pair(user_id, o) for o in others)))

    async def friends(self, me: int) -> list[Friend]:
        pairs = await self.storage.friends(me)
        ids = [u.id for u, _ in pairs]
        online = await self.registry.presence(ids)
        hidden = await self.storage.blockers_among(me, ids)  # who blocks me shows offline, no last seen
        remarks = await self.storage.remarks(me, ids)
        social = await self.storage.social(ids)
        rows = []
        for user, since in pairs:
            shown = user.id in online and user.id not in hidden
            visible = last_seen_visible(social[user.id].privacy, friends=True, blocked=user.id in hidden)
            seen = social[user.id].last_seen if visible and not shown and social[user.id].last_seen else None
            rows.append(
                Friend(user=user, since=since, online=shown, remark=remarks.get(user.id, ""), last_seen=seen)
            )
        return rows

    async def requests(self, me: int) -> tuple[list[FriendRequest], list[FriendRequest]]:
        return await self.storage.friend_requests(me)

    async def _pending_for(self, me: int, request_id: int) -> FriendRequest:
        request = await self.storage.friend_request(request_id)
        if request is None or me not in (request.to_user.id, request.from_user.id):
            raise not_found("friend request")
        if request.to_user.id != me:
            raise HubbubError(Code.FORBIDDEN, "only the receiver can answer a friend request")
        if request.status != "pending":
            raise HubbubError(Code.CONFLICT, f"this request was already {request.status}")
        return request


def _with_status(request: FriendRequest, status: str) -> FriendRequest:
    return FriendRequest(
        id=request.id,
        from_user=request.from_user,
        to_user=request.to_user,
        note=request.note,
        status=status,  # type: ignore[arg-type]
        ts=request.ts,
    )
