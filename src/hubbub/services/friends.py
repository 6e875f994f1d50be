"""Friendship: requests with a note, accept, decline, remove, lists. Both sides hear every change live."""

from __future__ import annotations

import asyncio
import random
import time

from hubbub.config import Config
from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.core.models import Friend, FriendRequest
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.registry.base import Registry
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.services import pushes
from hubbub.services.broadcasts import Forget, encode_forget, pair
from hubbub.services.limits import enforce
from hubbub.services.social_rules import last_seen_visible

# Positive friendship answers are cached this long (seconds): the send path asks on every private message.
# A removal drops the entry on every node at once (a ``Forget`` broadcast, services/broadcasts.py); the TTL
# only bounds how long a node that missed the broadcast (a Redis outage) keeps it.
FRIENDSHIP_CACHE_S = 10.0
_CACHE_MAX = 200_000
# Answers to "does either block the other?" are cached this briefly (both answers; issue 15). A block or an
# unblock drops the entry on every node at once, like a removal; this short TTL is the same safety net.
BLOCK_CACHE_S = 2.0


class FriendService:
    def __init__(
        self, config: Config, storage: Storage, routing: Routing, registry: Registry, limiter: RateLimiter
    ) -> None:
        self.config = config
        self.storage = storage
        self.routing = routing
        self.registry = registry
        self.limiter = limiter
        self._friends_cache: dict[tuple[int, int], float] = {}
        self._checking: dict[tuple[int, int], asyncio.Future[bool]] = {}
        self._blocks_cache: dict[tuple[int, int], tuple[bool, float]] = {}
        #: Counts ``forget`` calls: an answer read while one happened may predate the change, and is not kept.
        self._forgets = 0

    # -- the caches, on every node ----------------------------------------------------------------
    def forget(self, forget: Forget) -> None:
        """Drop the cached answers of these pairs (a ``Forget`` broadcast from any node, this one included).

        A query already under way may have read the database before the change committed: its answer is
        still returned to whoever asked first, but not cached, and later callers do not join it."""
        self._forgets += 1
        for key in forget.blocks:
            self._blocks_cache.pop(key, None)
        for key in forget.friendships:
            self._friends_cache.pop(key, None)
            self._checking.pop(key, None)

    async def _tell(self, forget: Forget) -> None:
        """After the change committed: forget here at once, then on every node (``Routing.broadcast``)."""
        self.forget(forget)
        await self.routing.broadcast(encode_forget(forget))

    # -- blocks (issue 15) ------------------------------------------------------------------------
    async def blocking(self, a: int, b: int) -> bool:
        """Whether either of the two blocked the other (cached ``BLOCK_CACHE_S``: the send path asks)."""
        key = pair(a, b)
        cached = self._blocks_cache.get(key)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        forgets = self._forgets
        answer = await self.storage.blocking(*key)
        if forgets != self._forgets:
            return answer  # a block changed meanwhile, perhaps this one: read again next time
        if len(self._blocks_cache) >= _CACHE_MAX:
            self._blocks_cache.clear()
        self._blocks_cache[key] = (answer, now + BLOCK_CACHE_S)
        return answer

    async def block_changed(self, a: int, b: int) -> None:
        """A block between the two was made or lifted (committed): every node applies it from now on."""
        await self._tell(Forget(blocks=(pair(a, b),)))

    async def check_not_blocked(self, me: int, other: int) -> None:
        """``blocked`` if either blocked the other: no message, request or call passes a block."""
        if await self.blocking(me, other):
            raise HubbubError(Code.BLOCKED, "you cannot reach this user: one of you blocked the other")

    async def are_friends(self, a: int, b: int) -> bool:
        key = pair(a, b)
        expires = self._friends_cache.get(key)
        if expires is not None and expires > time.monotonic():
            return True
        # When an entry expires, every send of that pair in flight misses at once: one query answers all.
        flight = self._checking.get(key)
        if flight is None:
            flight = asyncio.ensure_future(self._check(key, self._forgets))
            self._checking[key] = flight
            flight.add_done_callback(lambda f: self._checking.pop(key) if self._checking.get(key) is f else None)
        return await asyncio.shield(flight)

    async def _check(self, key: tuple[int, int], forgets: int) -> bool:
        """``forgets``: the count when the question was asked (the task may start later)."""
        if not await self.storage.are_friends(*key):
            return False
        if forgets != self._forgets:
            return True  # a friendship ended meanwhile, perhaps this one: not kept, read again next time
        if len(self._friends_cache) >= _CACHE_MAX:
            self._friends_cache.clear()
        # Jittered, so pairs cached together do not all expire (and hit the database) in the same instant.
        self._friends_cache[key] = time.monotonic() + FRIENDSHIP_CACHE_S * random.uniform(0.7, 1.3)
        return True

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
            rows.append(Friend(user=user, since=since, online=shown, remark=remarks.get(user.id, ""), last_seen=seen))
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
