"""The message-actions storage contract (engines/storage/base_actions.py), on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.storage.base import NewMessage, Rejected, Storage, Stored
from hubbub.engines.storage.base_actions import MAX_PINS, ActionResult, MessageChange
from tests.contract import test_storage as storage_contract
from tests.contract.test_storage import NOW, MakeStorage, new, two_users

#: The storage contract's fixtures: SQLite (both write paths) and a real PostgreSQL.
make_storage = storage_contract.make_storage
storage = storage_contract.storage

_ids = itertools.count(5_000_000)


def event(conv: str, sender: int, kind: str, cmid: str, body: dict[str, object]) -> NewMessage:
    members = tuple(int(x) for x in conv.split(":")[1:]) if conv.startswith("p:") else ()
    return NewMessage(
        id=next(_ids), conv=conv, sender=sender, cmid=cmid, type=kind, body=body, ts=NOW + 1, members=members
    )


def react(conv: str, sender: int, seq: int, emoji: str, on: bool = True, limit: int = 20) -> tuple:
    notice = event(conv, sender, "reaction", f"~react:{next(_ids)}", {"seq": seq, "emoji": emoji, "on": on})
    return notice, MessageChange(kind="react", seq=seq, emoji=emoji, on=on, max_distinct=limit)


async def test_edit_changes_the_body_keeps_history_and_is_an_event_in_the_seq(storage: Storage) -> None:
    a, _, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, "c1", "first")])
    body = {"text": "second", "edited": NOW + 1}
    notice = event(conv, a, "edit", "~edit:x", {"seq": 1, "text": "second", "edited": NOW + 1})
    done = await storage.apply_action(notice, MessageChange(kind="edit", seq=1, body=body))
    assert isinstance(done, ActionResult) and done.stored is not None and not done.stored.duplicate
    assert done.stored.message.seq == 2 and done.stored.message.type == "edit"
    assert done.target.body == body and set(done.stored.recipients) == {a, int(conv.split(":")[2])}
    current = await storage.message(conv, 1)
    assert current is not None and current.body == body
    assert await storage.message_edits(conv, 1) == [("first", NOW)]
    # A retried action id: the same event, nothing written twice.
    again = await storage.apply_action(
        event(conv, a, "edit", "~edit:x", {"seq": 1}), MessageChange(kind="edit", seq=1, body=body)
    )
    assert isinstance(again, ActionResult) and again.stored is not None and again.stored.duplicate
    assert again.stored.message.seq == 2 and len(await storage.messages_after(conv, 0, 10)) == 2
    # The same text again changes nothing and stores no event.
    same = await storage.apply_action(
        event(conv, a, "edit", "~edit:y", {"seq": 1}), MessageChange(kind="edit", seq=1, body=dict(body))
    )
    assert isinstance(same, ActionResult) and same.stored is None
    assert len(await storage.messages_after(conv, 0, 10)) == 2
    # Edit events never count as unread.
    states = {s.conv: s for s in await storage.conversations_of(int(conv.split(":")[2]))}
    assert states[conv].unread == 1


async def test_reactions_are_idempotent_aggregated_and_bounded(storage: Storage) -> None:
    a, b, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, "c1", "hello")])
    first = await storage.apply_action(*react(conv, a, 1, "👍"))
    assert isinstance(first, ActionResult) and first.stored is not None
    assert first.stored.message.body == {"seq": 1, "emoji": "👍", "on": True, "count": 1}
    twice = await storage.apply_action(*react(conv, a, 1, "👍"))
    assert isinstance(twice, ActionResult) and twice.stored is None  # reacting twice is one reaction
    await storage.apply_action(*react(conv, b, 1, "👍"))
    await storage.apply_action(*react(conv, b, 1, "🎉"))
    current = await storage.message(conv, 1)
    assert current is not None
    assert current.body["reactions"] == [
        {"emoji": "👍", "count": 2, "users": [a, b]},
        {"emoji": "🎉", "count": 1, "users": [b]},
    ]
    assert await storage.reaction_users(conv, 1, "👍", 0, 10) == sorted([a, b])
    off = await storage.apply_action(*react(conv, a, 1, "👍", on=False))
    assert isinstance(off, ActionResult) and off.stored is not None and off.stored.message.body["count"] == 1
    nothing = await storage.apply_action(*react(conv, a, 1, "👍", on=False))
    assert isinstance(nothing, ActionResult) and nothing.stored is None
    limited = await storage.apply_action(*react(conv, a, 1, "🔥", limit=2))
    assert isinstance(limited, Rejected) and limited.error.code is Code.REACTION_LIMIT
    current = await storage.message(conv, 1)
    assert current is not None and [r["emoji"] for r in current.body["reactions"]] == ["👍", "🎉"]
    assert current.body["reactions"][0] == {"emoji": "👍", "count": 1, "users": [b]}
    # Nothing was written for the refusal: seqs 2..5 are the four events that changed something.
    assert [m.type for m in await storage.messages_after(conv, 1, 10)] == ["reaction"] * 4


async def test_concurrent_reactions_from_two_nodes_all_count(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    owner = await one.create_user("owner", "O", "h", NOW)
    users = [await one.create_user(f"u{i}", "U", "h", NOW) for i in range(8)]
    made = await one.create_group(owner.id, {"name": "g"}, [u.id for u in users], new("", owner.id, "~g:1"))
    conv = made.group.conv
    said = (await one.store_messages([new(conv, owner.id, "m1", "vote")]))[0]
    assert isinstance(said, Stored)
    seq = said.message.seq
    results = await asyncio.gather(
        *((one if i % 2 else two).apply_action(*react(conv, u.id, seq, "👍")) for i, u in enumerate(users))
    )
    assert all(isinstance(r, ActionResult) and r.stored is not None for r in results)
    current = await one.message(conv, seq)
    assert current is not None and current.body["reactions"][0]["count"] == 8
    assert len(await one.reaction_users(conv, seq, "👍", 0, 100)) == 8
    seqs = [m.seq for m in await one.messages_after(conv, 0, 100)]
    assert seqs == list(range(1, len(seqs) + 1))  # the events took gap-free seqs


async def test_pins_and_a_refusal_writes_nothing(storage: Storage) -> None:
    a, _, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, f"c{i}", f"m{i}") for i in range(1, 4)])
    pinned = await storage.apply_action(
        event(conv, a, "pin", "~pin:1", {"seq": 2, "on": True}), MessageChange(kind="pin", seq=2)
    )
    assert isinstance(pinned, ActionResult) and pinned.stored is not None
    again = await storage.apply_action(
        event(conv, a, "pin", "~pin:2", {"seq": 2, "on": True}), MessageChange(kind="pin", seq=2)
    )
    assert isinstance(again, ActionResult) and again.stored is None
    assert [(p.seq, p.by) for p in await storage.pins(conv)] == [(2, a)]
    missing = await storage.apply_action(
        event(conv, a, "pin", "~pin:3", {"seq": 99, "on": True}), MessageChange(kind="pin", seq=99)
    )
    assert isinstance(missing, Rejected) and missing.error.code is Code.NOT_FOUND
    refused = await storage.apply_action(
        event(conv, a, "pin", "~pin:4", {"seq": 3, "on": True}),
        MessageChange(kind="pin", seq=3),
        lambda _item, _facts: HubbubError(Code.FORBIDDEN, "no"),
    )
    # (admit is for groups; in a private conversation there is nothing to admit)
    assert isinstance(refused, ActionResult)
    unpinned = await storage.apply_action(
        event(conv, a, "pin", "~pin:5", {"seq": 2, "on": False}), MessageChange(kind="pin", seq=2, on=False)
    )
    assert isinstance(unpinned, ActionResult) and unpinned.stored is not None
    assert [p.seq for p in await storage.pins(conv)] == [3]
    assert MAX_PINS == 50


async def test_group_admit_refuses_before_writing(storage: Storage) -> None:
    owner = await storage.create_user("gowner", "G", "h", NOW)
    created = await storage.create_group(owner.id, {"name": "g"}, [], new("", owner.id, "~g:1"))
    conv = created.group.conv
    said = (await storage.store_messages([new(conv, owner.id, "g1")]))[0]
    assert isinstance(said, Stored)
    seq = said.message.seq
    refused = await storage.apply_action(
        *react(conv, owner.id, seq, "👍"), lambda _item, _facts: HubbubError(Code.GROUP_FROZEN, "frozen")
    )
    assert isinstance(refused, Rejected) and refused.error.code is Code.GROUP_FROZEN
    kept = await storage.message(conv, seq)
    assert kept is not None and "reactions" not in kept.body
    assert await storage.reaction_users(conv, seq, "👍", 0, 10) == []
    assert [m.seq for m in await storage.messages_after(conv, seq, 10)] == []
    assert created.group.pin_policy == "admins"


async def test_recall_forgets_actions_and_blanks_edit_events(storage: Storage) -> None:
    a, _, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, "c1", "secret")])
    body = {"text": "more secret", "edited": NOW + 1}
    await storage.apply_action(
        event(conv, a, "edit", "~edit:1", {"seq": 1, "text": "more secret"}),
        MessageChange(kind="edit", seq=1, body=body),
    )
    await storage.apply_action(*react(conv, a, 1, "👍"))
    await storage.apply_action(event(conv, a, "pin", "~pin:1", {"seq": 1}), MessageChange(kind="pin", seq=1))
    notice = event(conv, a, "recall", "~recall:1", {"seq": 1})
    assert isinstance(await storage.recall_message(1, notice), Stored)
    edit_event = await storage.message(conv, 2)
    assert edit_event is not None and edit_event.type == "edit" and edit_event.body == {}
    assert await storage.message_edits(conv, 1) == []
    assert await storage.reaction_users(conv, 1, "👍", 0, 10) == []
    assert await storage.pins(conv) == []
    later = await storage.apply_action(*react(conv, a, 1, "👍"))
    assert isinstance(later, Rejected) and later.error.code is Code.NOT_FOUND


async def test_hidden_messages_are_per_user(storage: Storage) -> None:
    a, b, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, f"c{i}", f"m{i}") for i in range(1, 6)])
    await storage.hide_messages(a, conv, [2, 4, 4])
    await storage.hide_messages(a, conv, [4])  # idempotent
    assert await storage.hidden_seqs(a, conv) == [2, 4]
    assert await storage.hidden_seqs(a, conv, 2, 5) == [4]
    assert await storage.hidden_seqs(b, conv) == []
    assert await storage.hidden_in(conv) == {a: [2, 4]}
