"""Presence without sockets: a user's friends are pushed a change of their terminals, and only a change."""

from __future__ import annotations

from typing import Any

from hubbub.protocol.close_codes import Close
from tests.unit.services.conftest import World


def _presence(world: World, user: int) -> list[dict[str, Any]]:
    return [{k: f[k] for k in ("user", "online", "terminals")} for f in world.pushes.to(user, "presence")]


async def test_friends_hear_terminals_come_and_go(world: World) -> None:
    a, friend, stranger = await world.users("anna", "ben", "cleo")
    await world.befriend(a, friend)
    await world.presence.connected(a, "web", "c1")
    await world.presence.connected(a, "phone", "c2")
    await world.presence.disconnected(a, "web", "c1")
    await world.presence.disconnected(a, "phone", "c2")
    assert _presence(world, friend) == [
        {"user": a, "online": True, "terminals": ["web"]},
        {"user": a, "online": True, "terminals": ["phone", "web"]},
        {"user": a, "online": True, "terminals": ["phone"]},
        {"user": a, "online": False, "terminals": []},
    ]
    assert _presence(world, stranger) == [] and _presence(world, a) == []


async def test_a_replaced_terminal_is_no_change(world: World) -> None:
    a, friend = await world.users("anna", "ben")
    await world.befriend(a, friend)
    await world.presence.connected(a, "web", "c1")
    await world.presence.connected(a, "web", "c2")  # the same terminal logs in again
    assert len(_presence(world, friend)) == 1
    assert world.pushes.closes == [(a, Close.REPLACED, None)]
    await world.presence.disconnected(a, "web", "c1")  # the replaced one leaving changes nothing
    assert len(_presence(world, friend)) == 1
    assert await world.presence.online([a, friend]) == {a: ("web",)}


async def test_no_friends_no_push(world: World) -> None:
    (a,) = await world.users("anna")
    await world.presence.connected(a, "web", "c1")
    assert world.pushes.frames == []
    assert await world.presence.online([a]) == {a: ("web",)}


# -- issue 15: devices, the cap, blocks, last seen ---------------------------------------------------------
async def test_devices_show_as_their_terminal_class_once(world: World) -> None:
    a, friend = await world.users("anna", "ben")
    await world.befriend(a, friend)
    await world.presence.connected(a, "web#tab1", "c1")
    await world.presence.connected(a, "web#tab2", "c2")  # a second tab: friends see nothing new
    await world.presence.connected(a, "mobile#p", "c3")
    await world.presence.disconnected(a, "web#tab1", "c1")
    assert _presence(world, friend) == [
        {"user": a, "online": True, "terminals": ["web"]},
        {"user": a, "online": True, "terminals": ["mobile", "web"]},
    ]
    assert await world.presence.online([a]) == {a: ("mobile", "web")}
    assert world.pushes.closes == []  # different devices replace nothing


async def test_past_the_cap_the_idlest_is_closed_as_evicted(world: World) -> None:
    (a,) = await world.users("anna")
    world.presence.max_sessions = 2
    await world.presence.connected(a, "web#1", "c1")
    await world.presence.connected(a, "web#2", "c2")
    world.presence.active(a, "web#1", "c1")
    await world.presence.connected(a, "web#3", "c3")
    assert world.pushes.closes == [(a, Close.EVICTED, None)]
    assert await world.storage.friend_ids(a) == []
    assert len((await world.registry.presence([a]))[a]) == 2


async def test_those_a_user_blocks_hear_nothing_and_last_seen_follows_privacy(world: World) -> None:
    a, friend, blocked = await world.users("anna", "ben", "cleo")
    await world.befriend(a, friend)
    await world.befriend(a, blocked)
    await world.storage.block(a, blocked, 1)
    await world.presence.connected(a, "web", "c1")
    await world.presence.disconnected(a, "web", "c1")
    assert _presence(world, blocked) == []
    offline = world.pushes.to(friend, "presence")[-1]
    assert offline["online"] is False and offline["last_seen"] > 0
    await world.storage.set_last_seen_privacy(a, "nobody")
    await world.presence.connected(a, "web", "c2")
    await world.presence.disconnected(a, "web", "c2")
    assert "last_seen" not in world.pushes.to(friend, "presence")[-1]
    assert (await world.storage.social([a]))[a].last_seen > 0  # kept, only not shown
