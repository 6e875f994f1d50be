"""Hot groups without sockets: the policy, rosters and their invalidation, pulls, and signalling.

Memory engines, a fake storage that counts its reads, a fake clock and a fake audience of terminals: each
test runs in milliseconds and checks one rule.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest

from hubbub.config import Config
from hubbub.core.models import Group, Message
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.routing.memory import MemoryRouting
from hubbub.engines.storage.base import Storage
from hubbub.services.hot import HotGroups, HotPolicy
from hubbub.services.hot.news import News
from hubbub.services.hot.rosters import ROSTER_TTL_S

CONV = "g:1"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def group(hot: bool = False, member_count: int = 3) -> Group:
    return Group(
        id=1,
        name="g",
        avatar=None,
        notice="",
        owner=1,
        invite_policy="members",
        muted_all=False,
        dismissed=False,
        member_count=member_count,
        created_at=0,
        conv=CONV,
        hot=hot,
    )


def message(seq: int) -> Message:
    return Message(
        id=str(seq), conv=CONV, seq=seq, sender=1, type="text", body={"text": f"m{seq}"}, ts=0, cmid=f"c{seq}"
    )


class FakeStorage:
    """The few reads hot groups make, from dicts; ``gate`` holds a roster read until released."""

    def __init__(self, members: dict[int, int], hot: bool = True) -> None:
        self.members = members
        self.group_row = group(hot=hot, member_count=len(members))
        self.messages = [message(seq) for seq in range(1, 11)]
        self.reads = 0
        self.gate: asyncio.Event | None = None
        self.reading = asyncio.Event()

    async def member_floors(self, conv: str) -> dict[int, int]:
        self.reads += 1
        snapshot = dict(self.members)
        self.reading.set()
        if self.gate is not None:
            await self.gate.wait()
        return snapshot

    async def group(self, group_id: int) -> Group | None:
        return self.group_row

    async def messages_after(self, conv: str, after_seq: int, limit: int) -> list[Message]:
        return [m for m in self.messages if m.seq > after_seq][:limit]


@dataclass(eq=False)
class FakeTerminal:
    signalled: dict[str, int] = field(default_factory=dict)
    frames: list[dict[str, Any]] = field(default_factory=list)


class FakeAudience:
    def __init__(self, by_user: dict[int, list[FakeTerminal]]) -> None:
        self.by_user = by_user

    @property
    def terminals(self) -> dict[int, list[FakeTerminal]]:
        return self.by_user

    def send(self, terminals: Any, payload: bytes) -> int:
        for terminal in terminals:
            terminal.frames.append(json.loads(payload))
        return len(terminals)


_nodes: list[HotGroups] = []


def node(
    storage: FakeStorage, state: MemoryHotState, clock: FakeClock, audience: FakeAudience | None = None
) -> HotGroups:
    """One node's hot groups (nodes of a test share storage and the cache, as a cluster's share PostgreSQL
    and Redis). Its routing only loops news back to it: tests hand news to other nodes with ``heard``, and
    flush signals themselves (the window is long enough never to end during a test)."""
    config = Config(hot_group_threshold=500, hot_signal_window_ms=60_000)
    hot = HotGroups(config, cast(Storage, storage), MemoryRouting(), state, clock)
    if audience is not None:
        hot.signaller.attach(audience)
    _nodes.append(hot)
    return hot


@pytest.fixture(autouse=True)
async def _close_nodes() -> AsyncIterator[None]:
    yield
    while _nodes:
        _nodes.pop().close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- policy -----------------------------------------------------------------------------------------
def test_hot_is_the_flag_or_the_size() -> None:
    policy = HotPolicy(threshold=500, member_limit=5000, flagged_member_limit=100_000)
    assert not policy.is_hot(False, 499)
    assert policy.is_hot(False, 500)
    assert policy.is_hot(True, 2)
    shown = policy.describe(group(hot=False, member_count=601))
    assert shown.hot is False and shown.push_pull is True  # the owner's flag and the effective mode differ


def test_only_the_flag_lifts_the_member_cap() -> None:
    policy = HotPolicy(threshold=500, member_limit=5000, flagged_member_limit=100_000)
    assert policy.max_members(None) == 5000  # creating a group
    assert policy.max_members(group(hot=False, member_count=4000)) == 5000  # hot by size only
    assert policy.max_members(group(hot=True)) == 100_000


# -- rosters ----------------------------------------------------------------------------------------
async def test_a_roster_is_read_once_then_kept_until_its_ttl(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 0})
    hot = node(storage, MemoryHotState(), clock)
    assert hot.rosters.cached(CONV) is None
    first, second = await asyncio.gather(hot.rosters.get(CONV), hot.rosters.get(CONV))
    assert first is second and storage.reads == 1  # one read for concurrent callers
    clock.now += ROSTER_TTL_S - 0.01
    assert hot.rosters.cached(CONV) is first
    clock.now += 0.02
    assert hot.rosters.cached(CONV) is None  # a lost drop cannot keep a roster longer than this


async def test_any_group_change_drops_the_roster(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 0})
    hot = node(storage, MemoryHotState(), clock)
    await hot.rosters.get(CONV)
    hot.heard([News(conv=CONV, seq=5, group_changed=True, signal=False)])  # a pushed group's change too
    assert hot.rosters.cached(CONV) is None


async def test_a_roster_read_before_a_change_is_not_kept_after_it(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 0})
    hot = node(storage, MemoryHotState(), clock)
    storage.gate = asyncio.Event()
    loading = asyncio.ensure_future(hot.rosters.get(CONV))
    await storage.reading.wait()  # the read has taken its snapshot: 2 is a member
    del storage.members[2]
    hot.heard([News(conv=CONV, seq=6, group_changed=True)])  # the kick's news lands mid-read
    storage.gate.set()
    roster = await loading
    assert storage.reads == 2  # the overtaken read was not kept, but read again
    assert roster is not None and 2 not in roster.floors and hot.rosters.cached(CONV) is roster


# -- pulls ------------------------------------------------------------------------------------------
async def test_pulls_use_the_roster_only_for_its_members_of_a_hot_group(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 4})
    state = MemoryHotState()
    hot = node(storage, state, clock)
    assert await hot.pull(1, CONV, 0, 10) is None  # no news of the group here: the database authorizes
    assert storage.reads == 0
    hot.heard([News(conv=CONV, seq=10)])
    clock.now += ROSTER_TTL_S  # (an expired roster is read again by the first pull, not skipped)
    served = await hot.pull(2, CONV, 0, 3)
    assert served is not None
    found, more = served
    assert [json.loads(m)["seq"] for m in found] == [5, 6, 7] and more  # from 2's floor on
    assert await hot.pull(3, CONV, 0, 10) is None  # not on the roster: maybe just invited, ask the database

    assert storage.reads == 1
    storage.group_row = group(hot=False, member_count=2)
    hot.heard([News(conv=CONV, seq=11, group_changed=True, signal=False)])
    assert await hot.pull(1, CONV, 0, 10) is None  # not hot any more: the database serves
    await hot.rosters.get(CONV)
    assert await hot.pull(1, CONV, 0, 10) is None  # even with a roster at hand


async def test_a_recall_replaces_the_cached_copy_on_a_node_without_the_roster(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 0})
    state = MemoryHotState()
    await state.append(CONV, [(3, b'{"seq":3,"body":{"text":"secret"}}')])
    restarted = node(storage, state, clock)
    assert restarted.rosters.cached(CONV) is None
    blanked = message(3)
    blanked.recalled, blanked.body = True, {}
    await restarted.recalled(blanked)
    assert b"secret" not in b"".join(await state.recent(CONV, 2, 10) or [])


# -- signalling -------------------------------------------------------------------------------------
async def test_every_terminal_of_a_member_is_signalled_on_every_node(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 7: 0})
    state = MemoryHotState()
    web, phone = FakeTerminal(), FakeTerminal()
    node_a = node(storage, state, clock, FakeAudience({7: [web]}))
    node_b = node(storage, state, clock, FakeAudience({7: [phone]}))
    for hot in (node_a, node_b):  # a burst: both nodes hear the same news
        hot.heard([News(conv=CONV, seq=2), News(conv=CONV, seq=3)])
    for hot in (node_a, node_b):
        await hot.signaller.flush()
    assert web.frames == phone.frames == [{"type": "news", "conv": CONV, "seq": 3}]

    for hot in (node_a, node_b):  # nothing new: nobody is behind
        hot.heard([News(conv=CONV, seq=3)])
        await hot.signaller.flush()
    assert len(web.frames) == len(phone.frames) == 1


async def test_signals_go_to_current_members_and_mentions_at_once(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 0})
    sender, other, stranger = FakeTerminal(), FakeTerminal(), FakeTerminal()
    hot = node(storage, MemoryHotState(), clock, FakeAudience({1: [sender], 2: [other], 9: [stranger]}))
    hot.heard([News(conv=CONV, seq=4, mentions=(2,))])
    await hot.signaller.flush()  # waits for the mention's own signal first
    assert other.frames == [{"type": "news", "conv": CONV, "seq": 4, "mention": True}]
    assert sender.frames == [{"type": "news", "conv": CONV, "seq": 4}]  # the sender too
    assert stranger.frames == []  # not a member

    del storage.members[2]
    hot.heard([News(conv=CONV, seq=5, group_changed=True), News(conv=CONV, seq=6)])
    await hot.signaller.flush()
    assert len(other.frames) == 1  # removed: no longer signalled
    assert sender.frames[-1]["seq"] == 6


async def test_a_pushed_groups_change_signals_nobody(clock: FakeClock) -> None:
    storage = FakeStorage({1: 0, 2: 0}, hot=False)
    terminal = FakeTerminal()
    hot = node(storage, MemoryHotState(), clock, FakeAudience({2: [terminal]}))
    hot.heard([News(conv=CONV, seq=8, group_changed=True, signal=False)])
    await hot.signaller.flush()
    assert terminal.frames == [] and storage.reads == 0
