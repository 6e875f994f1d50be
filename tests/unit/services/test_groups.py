"""The group service's flows without sockets: who is told what, what is stored, and what is refused.

The role and state tables themselves are checked cell by cell in test_group_rules.py; here each flow runs
through ``GroupService`` on SQLite and the memory broker, and the test looks at the notices stored in the
group's conversation and the frames the broker delivered.
"""

from __future__ import annotations

from hubbub.core.errors import Code
from hubbub.core.models import Group
from hubbub.services.admin import Actor
from hubbub.services.groups import MAX_MUTE_S
from tests.unit.services.conftest import FakeClock, World, refused


async def _group(world: World, owner: int, *members: int, name: str = "team") -> Group:
    await world.befriend(owner, *members)
    return await world.groups.create(owner, {"name": name}, list(members))


async def _notices(world: World, group: Group) -> list[str]:
    messages = await world.storage.messages_after(group.conv, 0, 100)
    return [m.body["event"] for m in messages if m.type == "system"]


async def test_create_tells_every_member_and_stores_the_notice(world: World) -> None:
    owner, a, b = await world.user("owner"), await world.user("anna"), await world.user("ben")
    group = await _group(world, owner, a, b)
    assert (group.owner, group.member_count) == (owner, 3)
    assert await _notices(world, group) == ["created"]
    for user in (owner, a, b):
        assert world.pushes.events(user) == ["created"]


async def test_create_needs_friends_and_existing_users(world: World) -> None:
    owner, stranger = await world.user("owner"), await world.user("stranger")
    await refused(Code.NOT_FRIENDS, world.groups.create(owner, {"name": "x"}, [stranger]))
    await refused(Code.NOT_FOUND, world.groups.create(owner, {"name": "x"}, [424242]))
    await refused(Code.INVALID_FIELD, world.groups.create(owner, {}, []))
    assert world.pushes.frames == []


async def test_invite_follows_the_invite_policy(world: World) -> None:
    owner, a, b, c = await world.users("owner", "anna", "ben", "cleo")
    await world.befriend(a, b, c)
    group = await _group(world, owner, a)
    world.pushes.clear()
    joined = await world.groups.invite(a, group.id, [b])  # members may invite by default
    assert joined.member_count == 3
    assert world.pushes.events(b) == ["joined"] and world.pushes.events(owner) == ["joined"]

    await world.groups.edit(owner, group.id, {"invite_policy": "admins"})
    await refused(Code.FORBIDDEN, world.groups.invite(a, group.id, [c]))
    await world.groups.set_admin(owner, group.id, a, True)
    assert (await world.groups.invite(a, group.id, [c])).member_count == 4
    assert await _notices(world, group) == ["created", "joined", "edited", "admin_added", "joined"]


async def test_kick_the_kicked_hear_it_and_ranks_hold(world: World) -> None:
    owner, admin, a, b = await world.users("owner", "adam", "anna", "ben")
    group = await _group(world, owner, admin, a, b)
    await world.groups.set_admin(owner, group.id, admin, True)
    world.pushes.clear()

    await refused(Code.FORBIDDEN, world.groups.kick(a, group.id, b))  # a member cannot kick
    await refused(Code.FORBIDDEN, world.groups.kick(admin, group.id, owner))  # nor an admin the owner
    await refused(Code.NOT_FOUND, world.groups.kick(admin, group.id, 424242))
    after = await world.groups.kick(admin, group.id, a)
    assert after.member_count == 3
    assert world.pushes.events(a) == ["kicked"]  # told, though no longer a member
    await refused(Code.NOT_FOUND, world.groups.profile(a, group.id))
    world.pushes.clear()
    await world.groups.invite(owner, group.id, [b])  # already a member: nothing changes for them
    assert (await world.groups.profile(owner, group.id)).member_count == 3


async def test_quit_and_the_owner_cannot_quit(world: World) -> None:
    owner, a = await world.user("owner"), await world.user("anna")
    group = await _group(world, owner, a)
    await refused(Code.FORBIDDEN, world.groups.quit(owner, group.id))
    world.pushes.clear()
    await world.groups.quit(a, group.id)
    assert world.pushes.events(a) == ["left"] and world.pushes.events(owner) == ["left"]
    assert [g.id for g in await world.groups.my_groups(a)] == []


async def test_transfer_moves_ownership_and_the_old_owner_may_quit(world: World) -> None:
    owner, a = await world.user("owner"), await world.user("anna")
    group = await _group(world, owner, a)
    await refused(Code.FORBIDDEN, world.groups.transfer(a, group.id, a))
    await refused(Code.NOT_FOUND, world.groups.transfer(owner, group.id, owner))
    moved = await world.groups.transfer(owner, group.id, a)
    assert moved.owner == a
    assert (await world.groups.profile(owner, group.id)).me.role == "admin"  # type: ignore[union-attr]
    assert world.pushes.events(owner)[-1] == "owner_changed"
    await world.groups.quit(owner, group.id)
    await refused(Code.NOT_FOUND, world.groups.dismiss(owner, group.id))  # no longer a member: hidden
    await world.groups.dismiss(a, group.id)
    assert await _notices(world, group) == ["created", "owner_changed", "left", "dismissed"]


async def test_mute_runs_on_the_clock(world: World, clock: FakeClock) -> None:
    owner, a = await world.user("owner"), await world.user("anna")
    group = await _group(world, owner, a)
    await refused(Code.INVALID_FIELD, world.groups.mute(owner, group.id, a, MAX_MUTE_S + 1))
    await refused(Code.FORBIDDEN, world.groups.mute(a, group.id, owner, 60))
    world.pushes.clear()
    await world.groups.mute(owner, group.id, a, 60)
    muted = [f["msg"]["body"] for f in world.pushes.to(a, "msg")]
    assert muted == [{"event": "muted", "users": [a], "until": clock.ms + 60_000, "actor": owner}]
    member = await world.storage.group_member(group.id, a)
    assert member is not None and member.muted_until == clock.ms + 60_000
    await world.groups.mute(owner, group.id, a, 0)
    assert (await world.storage.group_member(group.id, a)).muted_until == 0  # type: ignore[union-attr]
    assert world.pushes.events(owner) == ["muted", "unmuted"]


async def test_mute_all_and_no_op_changes_store_nothing(world: World) -> None:
    owner, a = await world.user("owner"), await world.user("anna")
    group = await _group(world, owner, a)
    await refused(Code.FORBIDDEN, world.groups.mute_all(a, group.id, True))
    assert (await world.groups.mute_all(owner, group.id, True)).muted_all
    await world.groups.mute_all(owner, group.id, True)  # already: no second notice
    await world.groups.edit(owner, group.id, {"name": "team"})  # unchanged name: no notice
    assert await _notices(world, group) == ["created", "muted_all"]


async def test_a_dismissed_group_refuses_every_change_but_dnd(world: World) -> None:
    owner, a = await world.user("owner"), await world.user("anna")
    group = await _group(world, owner, a)
    await refused(Code.FORBIDDEN, world.groups.dismiss(a, group.id))
    await world.groups.dismiss(owner, group.id)
    world.pushes.clear()
    await refused(Code.GROUP_DISMISSED, world.groups.quit(a, group.id))
    await refused(Code.GROUP_DISMISSED, world.groups.edit(owner, group.id, {"name": "again"}))
    await refused(Code.GROUP_DISMISSED, world.groups.set_prefs(a, group.id, {"nickname": "ghost"}))
    assert (await world.groups.set_prefs(a, group.id, {"dnd": True})).dnd is True
    assert world.pushes.frames == []


async def test_a_change_racing_a_freeze_is_refused_inside_the_transaction(world: World) -> None:
    """The service's pre-check passed; the freeze lands before the write: the storage's check refuses it."""
    owner, a, b = await world.user("owner"), await world.user("anna"), await world.user("ben")
    await world.befriend(a, b)
    group = await _group(world, owner, a)
    storage_group = world.storage.group

    async def group_before_the_freeze(group_id: int) -> Group | None:
        seen = await storage_group(group_id)
        world.storage.group = storage_group  # type: ignore[method-assign]
        await world.admin.freeze_group(group_id, True, by=Actor(owner))
        return seen

    world.storage.group = group_before_the_freeze  # type: ignore[method-assign]
    await refused(Code.GROUP_FROZEN, world.groups.invite(a, group.id, [b]))
    assert await _notices(world, group) == ["created", "frozen"]


async def test_group_nickname_has_the_account_rule(world: World) -> None:
    owner, a = await world.user("owner"), await world.user("anna")
    group = await _group(world, owner, a)
    for bad in ("Hubbub", "h\u200bubbub", "a\nb", "x" * 65, 7):
        await refused(Code.INVALID_FIELD, world.groups.set_prefs(a, group.id, {"nickname": bad}))
    assert (await world.groups.set_prefs(a, group.id, {"nickname": "\u202e Ace "})).nickname == "Ace"
    assert (await world.groups.set_prefs(a, group.id, {"nickname": "  "})).nickname == ""
