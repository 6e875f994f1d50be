"""The message service's send rules, without sockets: a real SQLite storage (both write paths), an in-process
hot state, a routing engine that records what would be pushed, and a clock the test moves (issue 13.8)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubbub.config import Config
from hubbub.core.convs import private_conv
from hubbub.core.errors import Code, HubbubError
from hubbub.core.ids import MessageIds
from hubbub.core.models import Message
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.registry.memory import MemoryRegistry
from hubbub.engines.routing.base import Event
from hubbub.engines.storage.base import GroupChange, NewMessage
from hubbub.engines.storage.sql import SqlStorage
from hubbub.protocol import frames
from hubbub.services.content import ContentRules
from hubbub.services.friends import FriendService
from hubbub.services.hot import HotGroups
from hubbub.services.hot.news import News, decode_news
from hubbub.services.messages import MessageService

NOW = 1_764_000_000_000
_cmids = itertools.count()


class Clock:
    """Server time in ms, moved by the test."""

    def __init__(self) -> None:
        self.ms = NOW

    def __call__(self) -> int:
        return self.ms


class RecordingRouting:
    """What the services publish (routing's side of the contract is tested in tests/contract)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.news: list[News] = []

    async def publish(self, events: Sequence[Event]) -> None:
        self.events.extend(events)

    async def broadcast(self, payload: bytes) -> None:
        self.news.extend(decode_news(payload))

    def pushes(self, user: int) -> list[dict[str, Any]]:
        """The frames ``user`` would get, decoded, each with the connection it skips."""
        return [
            {**msgspec.json.decode(e.payload), "_exclude": e.exclude_conn}
            for e in self.events
            if user in e.recipients
        ]


class World:
    def __init__(self, storage: SqlStorage, config: Config) -> None:
        self.storage = storage
        self.clock = Clock()
        self.routing = RecordingRouting()
        routing: Any = self.routing
        friends = FriendService(config, storage, routing, MemoryRegistry("unit"), MemoryRateLimiter())
        hot = HotGroups(config, storage, routing, MemoryHotState(), clock=lambda: self.clock.ms / 1000)
        self.messages = MessageService(
            config,
            storage,
            routing,
            MemoryRateLimiter(),
            friends,
            MessageIds("unit"),
            hot,
            ContentRules(config, None),
            clock=self.clock,
        )

    async def users(self, *names: str) -> list[int]:
        return [(await self.storage.create_user(n, n, "h", NOW)).id for n in names]

    async def send(self, sender: int, text: str = "hi", **where: Any) -> Message:
        where.setdefault("to", None)
        where.setdefault("conv", None)
        cmid = where.pop("cmid", f"c{next(_cmids)}")
        origin = where.pop("origin", None)
        body = where.pop("body", {"text": text})
        stored = await self.messages.enqueue(
            sender, cmid=cmid, msg_type="text", body=body, origin=origin, **where
        )
        return await stored

    async def group(self, owner: int, members: list[int]) -> str:
        notice = self.notice(owner, "", {"event": "created"})
        update = await self.storage.create_group(owner, {"name": "g"}, members, notice)
        return update.stored.message.conv

    def notice(self, sender: int, conv: str, body: dict[str, Any]) -> NewMessage:
        return NewMessage(
            id=self.messages.ids.next(),
            conv=conv,
            sender=sender,
            cmid=f"~t:{next(_cmids)}",
            type="system",
            body=body,
            ts=self.clock(),
        )


@pytest.fixture(params=["fast-path", "general-path"])
async def world(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    storage = SqlStorage(f"sqlite+aiosqlite:///{tmp_path / 'hubbub.db'}")
    if request.param == "general-path" and storage._batch_writer is not None:
        storage._batch_writer.close()
        storage._batch_writer = None
    await storage.start()
    world = World(storage, Config(send_burst=1000))
    yield world
    await world.messages.close()
    await storage.close()


async def test_a_send_is_stored_then_pushed_to_both_members_but_not_its_own_connection(world: World) -> None:
    alice, bob = await world.users("alice", "bob")
    await world.storage.add_friendship(alice, bob, NOW)
    message = await world.send(alice, "hello", to=bob, origin="conn-a")
    assert (message.conv, message.seq, message.ts) == (private_conv(alice, bob), 1, NOW)
    assert await world.storage.messages_after(message.conv, 0, 10) == [message]
    (push,) = world.routing.pushes(bob)
    assert push == {"type": "msg", "msg": msgspec.to_builtins(message), "_exclude": "conn-a"}
    assert world.routing.pushes(alice) == [push]  # alice's other terminals hear of it too


async def test_sends_keep_their_order_and_a_resend_is_the_first_message_pushed_again(world: World) -> None:
    alice, bob = await world.users("alice", "bob")
    await world.storage.add_friendship(alice, bob, NOW)
    queued = [
        await world.messages.enqueue(
            alice, to=bob, conv=None, cmid=f"o{i}", msg_type="text", body={"text": str(i)}, origin="a"
        )
        for i in range(5)
    ]
    again = await world.messages.enqueue(
        alice, to=bob, conv=None, cmid="o2", msg_type="text", body={"text": "other"}, origin="b"
    )
    stored = await asyncio.gather(*queued)
    assert [m.seq for m in stored] == [1, 2, 3, 4, 5]
    assert await again == stored[2]  # not a sixth message, and not the resend's body
    assert len(await world.storage.messages_after(stored[0].conv, 0, 10)) == 5
    pushed = [(p["msg"]["seq"], p["_exclude"]) for p in world.routing.pushes(bob)]
    assert pushed[:5] == [(1, "a"), (2, "a"), (3, "a"), (4, "a"), (5, "a")]
    # The resend pushes the stored message again (its first try may have died before pushing), unless it
    # was in the same batch as the first, which is one push.
    assert pushed[5:] in ([], [(3, "b")])


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ({"to": 999_999}, Code.NOT_FOUND),
        ({"to": "self"}, Code.INVALID_FIELD),
        ({"to": "stranger"}, Code.NOT_FRIENDS),
        ({"to": "friend", "cmid": "~mine"}, Code.INVALID_FIELD),
        ({"to": "friend", "cmid": "a\x00b"}, Code.INVALID_FIELD),
        ({"to": "friend", "conv": "p:1:2"}, Code.INVALID_FIELD),
        ({"conv": "p:8:9"}, Code.FORBIDDEN),
        ({"to": "friend", "body": {"text": " "}}, Code.INVALID_FIELD),
        ({"to": "friend", "body": {"text": "x", "mentions": [1]}}, Code.INVALID_FIELD),
    ],
)
async def test_a_refused_send_is_refused_before_anything_is_stored(
    world: World, where: dict[str, Any], code: Code
) -> None:
    alice, bob, carl = await world.users("alice", "bob", "carl")
    await world.storage.add_friendship(alice, bob, NOW)
    names = {"self": alice, "stranger": carl, "friend": bob}
    where = dict(where)
    if isinstance(where.get("to"), str):
        where["to"] = names[where["to"]]
    with pytest.raises(HubbubError) as refused:
        await world.send(alice, **where)
    assert refused.value.code is code
    assert world.messages.batcher.messages == 0 and world.routing.events == []


async def test_the_recall_window_follows_the_clock(world: World) -> None:
    alice, bob = await world.users("alice", "bob")
    await world.storage.add_friendship(alice, bob, NOW)
    first = await world.send(alice, "oops", to=bob)
    second = await world.send(alice, "fine", to=bob)
    world.clock.ms += world.messages.config.recall_window_s * 1000 + 1
    with pytest.raises(HubbubError) as late:
        await world.messages.recall(alice, second.conv, second.seq)
    assert late.value.code is Code.RECALL_EXPIRED
    world.clock.ms = NOW + 1000
    notice = await world.messages.recall(alice, first.conv, first.seq)
    assert (notice.type, notice.body, notice.seq, notice.ts) == ("recall", {"seq": first.seq}, 3, NOW + 1000)
    blanked = await world.storage.message(first.conv, first.seq)
    assert blanked is not None and blanked.recalled and blanked.body == {}
    assert world.routing.pushes(bob)[-1]["msg"] == msgspec.to_builtins(notice)
    assert await world.messages.recall(alice, first.conv, first.seq) == notice  # twice: the same notice


async def test_group_rules_are_applied_inside_the_storing_transaction(world: World) -> None:
    owner, member, outsider = await world.users("owner", "member", "outsider")
    conv = await world.group(owner, [member])
    group_id = int(conv[2:])
    ok = await world.send(member, "hi all", conv=conv)
    assert ok.seq == 2  # after the creation notice
    # A mute set after the send was checked is still seen: the rules run where the message is stored.
    until = NOW + 60_000
    await world.storage.change_group(
        group_id, GroupChange(mutes={member: until}), world.notice(owner, conv, {"event": "muted"})
    )
    with pytest.raises(HubbubError) as muted:
        await world.send(member, "still here?", conv=conv)
    assert (muted.value.code, muted.value.extra.get("until")) == (Code.MUTED, until)
    with pytest.raises(HubbubError) as forbidden:
        await world.send(outsider, "let me in", conv=conv)
    assert forbidden.value.code is Code.FORBIDDEN
    world.clock.ms = until + 1
    assert (await world.send(member, "back", conv=conv)).seq == 4


async def test_do_not_disturb_members_get_silent_pushes_unless_mentioned(world: World) -> None:
    owner, quiet, loud = await world.users("owner", "quiet", "loud")
    conv = await world.group(owner, [quiet, loud])
    await world.storage.set_member_prefs(int(conv[2:]), quiet, {"dnd": True})
    plain = await world.send(owner, "plain", conv=conv)
    mention = await world.send(owner, body={"text": "@quiet", "mentions": [quiet]}, conv=conv)
    silent = {p["msg"]["seq"]: p.get("silent", False) for p in world.routing.pushes(quiet)}
    assert silent == {plain.seq: True, mention.seq: False}
    assert all(not p.get("silent") for p in world.routing.pushes(loud))


async def test_server_messages_take_the_send_path_without_client_rules(world: World) -> None:
    """Admin notices: from an account nobody is friends with, with a ``~`` cmid; stored, pushed, and
    deduplicated like any send."""
    server, alice = await world.users("~hubbub", "alice")
    conv = private_conv(server, alice)
    notice = NewMessage(
        id=world.messages.ids.next(),
        conv=conv,
        sender=server,
        cmid="~n:1",
        type="notice",
        body={"text": "maintenance at noon"},
        ts=world.clock(),
        members=(min(server, alice), max(server, alice)),
    )
    (stored,) = await world.messages.post([notice])
    assert (stored.seq, stored.type, stored.body) == (1, "notice", {"text": "maintenance at noon"})
    (again,) = await world.messages.post([msgspec.structs.replace(notice, id=world.messages.ids.next())])
    assert again == stored and len(await world.storage.messages_after(conv, 0, 10)) == 1
    assert [p["msg"]["seq"] for p in world.routing.pushes(alice)] == [1, 1]  # a retry pushes it again
    assert world.messages.batcher.by_type["notice"] == 2


async def test_a_pull_frame_carries_cached_json_as_it_is(world: World) -> None:
    """Hot groups are served from a cache of encoded messages: they go into the frame as raw JSON, and the
    frame is the same as one built from the messages."""
    alice, bob = await world.users("alice", "bob")
    await world.storage.add_friendship(alice, bob, NOW)
    sent = [await world.send(alice, str(i), to=bob) for i in range(3)]
    found, more = await world.messages.pull_for_wire(bob, sent[0].conv, 0, 2)
    assert (list(found), more) == (sent[:2], True)
    raw = [msgspec.Raw(frames.encode(m)) for m in sent]
    as_raw = frames.encode(frames.Messages(conv=sent[0].conv, messages=raw, has_more=False, rid=7))
    as_models = frames.encode(frames.Messages(conv=sent[0].conv, messages=sent, has_more=False, rid=7))
    assert as_raw == as_models
