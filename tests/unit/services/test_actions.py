"""The message-action rules (services/actions.py, services/replies.py), without sockets: a real SQLite storage,
memory routing that records every frame, and a clock the test moves."""

from __future__ import annotations

import itertools
import types
from collections.abc import AsyncIterator

import msgspec
import pytest

from hubbub.core.convs import private_conv
from hubbub.core.errors import Code
from hubbub.core.ids import MessageIds
from hubbub.core.models import Group, Message
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.storage.base import GroupFacts, MemberFacts, NewMessage
from hubbub.services import actions as actions_module
from hubbub.services import replies
from hubbub.services.actions import (
    ActionService,
    admit_member,
    admit_pin,
    check_emoji,
    forward_cmid,
    forwarded_body,
)
from hubbub.services.admin import Actor
from hubbub.services.hot import HotGroups
from hubbub.services.messages import MessageService
from tests.unit.services.conftest import FakeClock, World, refused

O, A, M = "owner", "admin", "member"  # noqa: E741
_cmids = itertools.count()


@pytest.fixture
async def svc(
    world: World, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ActionService]:
    monkeypatch.setattr(actions_module, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    hot = HotGroups(world.config, world.storage, world.routing, MemoryHotState())
    ids = MessageIds(world.config.effective_node_id)
    c = world.config
    messages = MessageService(
        c, world.storage, world.routing, world.limiter, world.friends, ids, hot, world.rules
    )
    service = ActionService(
        c, world.storage, world.routing, messages, ids, hot, world.rules, clock=clock.now_ms
    )
    yield service
    await messages.close()


def group(**fields: object) -> Group:
    values: dict[str, object] = {
        "id": 1,
        "name": "g",
        "avatar": None,
        "notice": "",
        "owner": 1,
        "invite_policy": "members",
        "muted_all": False,
        "dismissed": False,
        "member_count": 3,
        "created_at": 0,
    }
    values.update(fields)
    return Group(**values)  # type: ignore[arg-type]


def item(sender: int) -> NewMessage:
    return NewMessage(id=1, conv="g:1", sender=sender, cmid="~x", type="pin", body={}, ts=0)


async def send(svc: ActionService, sender: int, conv: str, text: str = "hello", **body: object) -> Message:
    stored = await svc.messages.enqueue(
        sender, to=None, conv=conv, cmid=f"c-{next(_cmids)}", msg_type="text", body={"text": text, **body}
    )
    return await stored


async def two(world: World) -> tuple[int, int, str]:
    a, b = await world.users("alice", "bob")
    await world.befriend(a, b)
    return a, b, private_conv(a, b)


# -- pure rules ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "role", "allowed"),
    [
        ("admins", O, True),
        ("admins", A, True),
        ("admins", M, False),
        ("members", M, True),
        ("members", A, True),
    ],
)
def test_who_may_pin(policy: str, role: str, allowed: bool) -> None:
    facts = GroupFacts(group=group(pin_policy=policy), members={5: MemberFacts(role, 0)})
    refusal = admit_pin(item(5), facts)
    assert (refusal is None) == allowed
    if refusal is not None:
        assert refusal.code is Code.FORBIDDEN


def test_a_frozen_group_refuses_reactions_and_pins_a_muted_member_may_react() -> None:
    frozen = GroupFacts(group=group(frozen=True), members={5: MemberFacts(O, 0)})
    assert admit_member(item(5), frozen).code is Code.GROUP_FROZEN  # type: ignore[union-attr]
    assert admit_pin(item(5), frozen).code is Code.GROUP_FROZEN  # type: ignore[union-attr]
    muted = GroupFacts(group=group(muted_all=True), members={5: MemberFacts(M, 2**40)})
    assert admit_member(item(5), muted) is None
    assert admit_member(item(6), muted).code is Code.FORBIDDEN  # type: ignore[union-attr]


def test_reaction_emoji(world: World) -> None:
    for good in ("👍", "❤️", "👍🏽", "🇫🇷", "👨‍👩‍👧"):
        assert check_emoji(world.config, good) == good
    for bad in ("", "a", "👍👍", ":+1:", "👍 ", "<script>"):
        with pytest.raises(Exception) as err:
            check_emoji(world.config, bad)
        assert err.value.code is Code.REACTION_INVALID  # type: ignore[attr-defined]
    listed = msgspec.structs.replace(world.config, reaction_emoji="👍,🎉")
    assert check_emoji(listed, "🎉") == "🎉"
    with pytest.raises(Exception) as err:
        check_emoji(listed, "🔥")
    assert err.value.code is Code.REACTION_INVALID  # type: ignore[attr-defined]


def test_forward_cmids_are_stable_distinct_and_the_servers() -> None:
    one = forward_cmid("aid-1", "g:4", 0)
    assert one == forward_cmid("aid-1", "g:4", 0) and one.startswith("~fwd:") and len(one) <= 96
    assert (
        len(
            {
                one,
                forward_cmid("aid-1", "g:4", 1),
                forward_cmid("aid-1", "g:5", 0),
                forward_cmid("aid-2", "g:4", 0),
            }
        )
        == 4
    )


def test_a_forwarded_copy_drops_server_keys_and_marks_itself() -> None:
    original = Message(
        id="1",
        conv="g:1",
        seq=3,
        sender=7,
        type="text",
        ts=99,
        cmid="c",
        body={
            "text": "hi",
            "mentions": [2],
            "reply": {"seq": 1},
            "edited": 5,
            "reactions": [{"emoji": "👍"}],
        },
    )
    kind, body = forwarded_body(original, show_sender=False)
    assert (kind, body) == ("text", {"text": "hi", "forward": {"ts": 99}})
    assert forwarded_body(original, show_sender=True)[1]["forward"] == {"ts": 99, "sender": 7}


# -- the service ----------------------------------------------------------------------------------------------
async def test_edit_window_and_zero_means_no_limit(
    world: World, svc: ActionService, clock: FakeClock
) -> None:
    a, _, conv = await two(world)
    sent = await send(svc, a, conv, "first")
    clock.advance(world.config.edit_window_s + 30)  # (the send took real time: its ts is the real clock's)
    await refused(Code.EDIT_EXPIRED, svc.edit(a, conv, sent.seq, aid="e1", text="late"))
    assert (await world.storage.message(conv, sent.seq)).body == {"text": "first"}  # type: ignore[union-attr]
    svc.config = msgspec.structs.replace(svc.config, edit_window_s=0)
    clock.advance(365 * 86400)
    event = await svc.edit(a, conv, sent.seq, aid="e2", text="a year later")
    assert event.type == "edit" and event.body["text"] == "a year later"


async def test_only_the_sender_edits_text_and_the_word_filter_applies(
    world: World, svc: ActionService
) -> None:
    a, b, conv = await two(world)
    sent = await send(svc, a, conv, "hello")
    await refused(Code.FORBIDDEN, svc.edit(b, conv, sent.seq, aid="e1", text="mine"))
    await refused(Code.INVALID_FIELD, svc.edit(a, conv, sent.seq, aid="~server", text="x"))
    await refused(Code.NOT_FOUND, svc.edit(a, conv, 999, aid="e2", text="x"))
    await world.storage.change_words(["badword"], [], 0)
    await world.rules.words.refresh()  # type: ignore[union-attr]
    event = await svc.edit(a, conv, sent.seq, aid="e3", text="a badword here")
    assert "badword" not in event.body["text"]
    current = await world.storage.message(conv, sent.seq)
    assert current is not None and "badword" not in current.body["text"] and current.body["edited"]


async def test_an_edit_adding_a_mention_notifies_only_the_newly_mentioned(
    world: World, svc: ActionService
) -> None:
    owner, a, b = await world.users("owner", "a", "b")
    await world.befriend(owner, a, b)
    made = await world.groups.create(owner, {"name": "g"}, [a, b])
    conv = made.conv
    sent = await send(svc, owner, conv, "hey", mentions=[a])
    await world.storage.set_read_seq(conv, b, sent.seq)
    await world.storage.set_read_seq(conv, a, sent.seq)
    await svc.edit(owner, conv, sent.seq, aid="e1", text="hey both", mentions=[a, b])
    states = {u: {s.conv: s for s in await world.storage.conversations_of(u)}[conv] for u in (a, b)}
    assert states[b].mention_seq > states[b].read_seq  # b was added: notified
    assert states[a].mention_seq <= states[a].read_seq  # a was mentioned already: not again


async def test_a_frozen_group_refuses_an_edit_and_changes_nothing(world: World, svc: ActionService) -> None:
    owner, a = await world.users("owner", "a")
    await world.befriend(owner, a)
    made = await world.groups.create(owner, {"name": "g"}, [a])
    sent = await send(svc, a, made.conv, "before")
    await world.admin.freeze_group(made.id, True, by=Actor(owner))
    await refused(Code.GROUP_FROZEN, svc.edit(a, made.conv, sent.seq, aid="e1", text="after"))
    await refused(Code.GROUP_FROZEN, svc.react(a, made.conv, sent.seq, "👍"))
    current = await world.storage.message(made.conv, sent.seq)
    assert current is not None and current.body == {"text": "before"}


async def test_forward_is_all_or_nothing(world: World, svc: ActionService) -> None:
    a, b, conv = await two(world)
    stranger = await world.user("stranger")
    sent = await send(svc, b, conv, "share me")
    c = await world.user("carol")
    await world.befriend(a, c)
    good, bad = private_conv(a, c), private_conv(a, stranger)
    await refused(Code.NOT_FRIENDS, svc.forward(a, aid="f1", items=[(conv, sent.seq)], targets=[good, bad]))
    assert await world.storage.messages_after(good, 0, 10) == []
    many = [private_conv(a, 100 + i) for i in range(world.config.forward_max_targets + 1)]
    await refused(Code.INVALID_FIELD, svc.forward(a, aid="f2", items=[(conv, sent.seq)], targets=many))
    await refused(
        Code.INVALID_FIELD, svc.forward(a, aid="f3", items=[(conv, sent.seq)], targets=[good, good])
    )
    await refused(Code.FORBIDDEN, svc.forward(c, aid="f4", items=[(conv, sent.seq)], targets=[good]))
    copies = await svc.forward(a, aid="f5", items=[(conv, sent.seq)], targets=[good])
    again = await svc.forward(a, aid="f5", items=[(conv, sent.seq)], targets=[good])
    assert [m.seq for m in copies] == [m.seq for m in again] == [1]


async def test_group_typing_is_small_groups_only_and_coalesced(
    world: World, svc: ActionService, clock: FakeClock
) -> None:
    owner, a, b = await world.users("owner", "a", "b")
    await world.befriend(owner, a, b)
    made = await world.groups.create(owner, {"name": "g"}, [a, b])
    world.pushes.clear()
    await svc.typing(a, made.conv)
    await svc.typing(a, made.conv)  # within the interval: dropped
    assert len(world.pushes.to(b, "typing")) == 1 and len(world.pushes.to(owner, "typing")) == 1
    assert world.pushes.to(a, "typing") == []
    clock.advance(world.config.typing_interval_ms / 1000)
    await svc.typing(a, made.conv)
    assert len(world.pushes.to(b, "typing")) == 2
    svc.config = msgspec.structs.replace(svc.config, group_typing_max_members=2)
    await refused(Code.FORBIDDEN, svc.typing(b, made.conv))
    outsider = await world.user("outsider")
    svc.config = msgspec.structs.replace(svc.config, group_typing_max_members=20)
    await refused(Code.FORBIDDEN, svc.typing(outsider, made.conv))


async def test_reply_snapshot_refuses_what_the_sender_cannot_see(world: World, svc: ActionService) -> None:
    a, b, conv = await two(world)
    sent = await send(svc, a, conv, "x" * 300)
    snap = await replies.snapshot(world.storage, conv, 0, {"seq": sent.seq})
    assert snap == {"seq": sent.seq, "sender": a, "type": "text", "text": "x" * replies.SNAPSHOT_CHARS}
    for bad in ({"seq": sent.seq + 5}, {"seq": sent.seq}):
        floor = sent.seq if bad == {"seq": sent.seq} else 0  # the second: below the member's window
        with pytest.raises(Exception) as err:
            await replies.snapshot(world.storage, conv, floor, bad)
        assert err.value.code is Code.REPLY_INVALID  # type: ignore[attr-defined]
    with pytest.raises(Exception) as err:
        await replies.snapshot(world.storage, conv, 0, {"seq": "1"})
    assert err.value.code is Code.INVALID_FIELD  # type: ignore[attr-defined]
    await svc.messages.recall(a, conv, sent.seq)
    with pytest.raises(Exception) as err:
        await replies.snapshot(world.storage, conv, 0, {"seq": sent.seq})
    assert err.value.code is Code.REPLY_INVALID  # type: ignore[attr-defined]
    assert b
