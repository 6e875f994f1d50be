"""Server admins' group changes (services/admin.py): checked again inside the writing transaction.

Before, ``dismiss_group`` and ``freeze_group`` checked the group's state only before writing: two racing
dismissals both passed and stored two "dismissed" notices, and two racing freezes two "frozen" ones. Here
both callers read the group before either writes (a barrier in ``Storage.group``), the worst interleaving.
"""

from __future__ import annotations

import asyncio

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Group
from hubbub.services.admin import Actor
from tests.unit.services.conftest import World


async def _racing_reads(world: World) -> None:
    """Make the next two ``Storage.group`` calls return only once both have read."""
    read = world.storage.group
    barrier = asyncio.Barrier(2)
    calls = 0

    async def group(group_id: int) -> Group | None:
        nonlocal calls
        calls += 1
        seen = await read(group_id)
        if calls <= 2:
            await asyncio.wait_for(barrier.wait(), 5)
        return seen

    world.storage.group = group  # type: ignore[method-assign]


async def _setup(world: World) -> tuple[int, Group]:
    owner, a = await world.users("owner", "anna")
    await world.befriend(owner, a)
    return owner, await world.groups.create(owner, {"name": "team"}, [a])


async def _notices(world: World, group: Group) -> list[str]:
    return [
        m.body["event"] for m in await world.storage.messages_after(group.conv, 0, 100) if m.type == "system"
    ]


async def test_two_racing_dismissals_store_one_notice(world: World) -> None:
    owner, group = await _setup(world)
    await _racing_reads(world)
    results = await asyncio.gather(
        world.admin.dismiss_group(group.id, by=Actor(owner)),
        world.admin.dismiss_group(group.id, by=Actor(owner)),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, HubbubError)]
    assert len(refused) == 1 and refused[0].code == Code.GROUP_DISMISSED, results
    assert await _notices(world, group) == ["created", "dismissed"]


async def test_two_racing_freezes_store_one_notice_and_both_answer_the_group(world: World) -> None:
    owner, group = await _setup(world)
    await _racing_reads(world)
    results = await asyncio.gather(
        world.admin.freeze_group(group.id, True, by=Actor(owner)),
        world.admin.freeze_group(group.id, True, by=Actor(owner)),
    )
    assert [r.frozen for r in results] == [True, True]
    assert await _notices(world, group) == ["created", "frozen"]


async def test_freezing_a_dismissed_group_is_refused(world: World) -> None:
    owner, group = await _setup(world)
    await world.admin.dismiss_group(group.id, by=Actor(owner))
    with pytest.raises(HubbubError) as err:
        await world.admin.freeze_group(group.id, True, by=Actor(owner))
    assert err.value.code == Code.GROUP_DISMISSED
    assert await _notices(world, group) == ["created", "dismissed"]
