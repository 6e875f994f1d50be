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
