"""Friend requests and the friendship cache without sockets: what each side is pushed, what is refused, and
the cache that spares the database a query per send, on a fake clock."""

from __future__ import annotations

import asyncio

from hubbub.core.errors import Code
from hubbub.services.broadcasts import Forget
from hubbub.services.friends import FRIENDSHIP_CACHE_S
from tests.unit.services.conftest import EPOCH_MS, FakeClock, World, refused


def _friend_events(world: World, user: int) -> list[str]:
    return [f["event"] for f in world.pushes.to(user, "friend")]


async def test_request_then_accept(world: World) -> None:
    a, b = await world.users("anna", "ben")
    request = await world.friends.request(a, b, "  hi  ")
    assert (request.note, request.status) == ("hi", "pending")
    assert _friend_events(world, a) == _friend_events(world, b) == ["request"]
    await refused(Code.CONFLICT, world.friends.request(a, b, ""))  # already pending
    await refused(Code.FORBIDDEN, world.friends.accept(a, request.id))  # only the receiver answers
    accepted = await world.friends.accept(b, request.id)
    assert accepted.status == "accepted" and await world.friends.are_friends(a, b)
    # Each side is told who the new friend is.
    assert [f["user"]["id"] for f in world.pushes.to(a, "friend") if f["event"] == "accepted"] == [b]
    assert [f["user"]["id"] for f in world.pushes.to(b, "friend") if f["event"] == "accepted"] == [a]
    await refused(Code.CONFLICT, world.friends.accept(b, request.id))
    await refused(Code.CONFLICT, world.friends.request(a, b, ""))  # already friends
    assert [f.user.id for f in await world.friends.friends(a)] == [b]


async def test_asking_back_is_saying_yes(world: World) -> None:
    a, b = await world.users("anna", "ben")
    await world.friends.request(a, b, "")
    answer = await world.friends.request(b, a, "")
    assert answer.status == "accepted" and await world.storage.are_friends(a, b)


async def test_refusals(world: World) -> None:
    a, b, c = await world.users("anna", "ben", "cleo")
    await refused(Code.INVALID_FIELD, world.friends.request(a, a, ""))
    await refused(Code.INVALID_FIELD, world.friends.request(a, b, "x" * 257))
    await refused(Code.NOT_FOUND, world.friends.request(a, 424242, ""))
    request = await world.friends.request(a, b, "")
    await refused(Code.NOT_FOUND, world.friends.accept(c, request.id))  # not theirs: not even seen
    await refused(Code.NOT_FOUND, world.friends.decline(b, 424242))
    declined = await world.friends.decline(b, request.id)
    assert declined.status == "declined" and _friend_events(world, a) == ["request", "declined"]
    await refused(Code.CONFLICT, world.friends.accept(b, request.id))


async def test_request_limit_refills_with_the_clock(world: World, clock: FakeClock) -> None:
    me, *others = await world.users("anna", *(f"user{i}" for i in range(21)))
    for other in others[:20]:
        await world.friends.request(me, other, "")
    await refused(Code.RATE_LIMITED, world.friends.request(me, others[20], ""))
    clock.advance(3600 / 20)
    await world.friends.request(me, others[20], "")


async def test_remove_tells_both_and_drops_the_cache(world: World) -> None:
    a, b = await world.users("anna", "ben")
    await world.befriend(a, b)
    assert await world.friends.are_friends(a, b)  # now cached
    await world.friends.remove(a, b)
    assert not await world.friends.are_friends(b, a)
    assert [f["user"]["id"] for f in world.pushes.to(a, "friend")] == [b]
    assert [f["user"]["id"] for f in world.pushes.to(b, "friend")] == [a]
    await refused(Code.NOT_FOUND, world.friends.remove(a, b))


async def test_the_friendship_cache_expires(world: World, clock: FakeClock) -> None:
    a, b = await world.users("anna", "ben")
    await world.befriend(a, b)
    assert await world.friends.are_friends(a, b)
    await world.storage.remove_friendship(a, b)  # behind the service's back (another node)
    assert await world.friends.are_friends(a, b)  # cached, jittered to 0.7-1.3 x FRIENDSHIP_CACHE_S
    clock.advance(FRIENDSHIP_CACHE_S * 1.3 + 0.1)
    assert not await world.friends.are_friends(a, b)
    assert not await world.friends.are_friends(b, a)  # a miss is not cached: asked again, still no



async def test_a_block_change_drops_the_cached_answer_even_one_being_read(world: World) -> None:
    """``block_changed`` drops the pair here (and, by broadcast, on every node: tests/contract/
    test_cache_drops.py); an answer read while a drop happened may predate the change and is not kept."""
    a, b = await world.users("anna", "ben")
    assert not await world.friends.blocking(a, b)  # cached "no"
    await world.storage.block(a, b, EPOCH_MS)
    await world.friends.block_changed(b, a)
    assert await world.friends.blocking(a, b)
    await world.storage.unblock(a, b)
    await world.friends.block_changed(a, b)
    reading = asyncio.ensure_future(world.friends.blocking(a, b))
    await asyncio.sleep(0)  # the read is under way
    world.friends.forget(Forget(blocks=((a, b),)))  # a change (anywhere) meanwhile
    assert not await reading
    await world.storage.block(a, b, EPOCH_MS)  # behind the service's back: only a fresh read sees it
    assert await world.friends.blocking(a, b)  # the "no" read across the drop was not kept


async def test_a_friendship_read_across_a_drop_is_neither_kept_nor_joined(world: World) -> None:
    a, b = await world.users("anna", "ben")
    await world.befriend(a, b)
    reading = asyncio.ensure_future(world.friends.are_friends(a, b))
    await asyncio.sleep(0)  # the read is under way
    world.friends.forget(Forget(friendships=((a, b),)))
    await world.storage.remove_friendship(a, b)
    assert not await world.friends.are_friends(a, b)  # a read of its own, not the one under way
    await reading
    assert not await world.friends.are_friends(a, b)  # nor did that one leave a "yes" behind
