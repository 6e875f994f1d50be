"""The pure planning both message executors share (engines/storage/write_plan.py), without a database."""

from __future__ import annotations

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Group, Message
from hubbub.engines.storage import write_plan as plan
from hubbub.engines.storage.base import GroupFacts, MemberFacts, NewMessage, Rejected, Stored


def new(conv: str, sender: int, cmid: str, members: tuple[int, ...] = ()) -> NewMessage:
    return NewMessage(id=1, conv=conv, sender=sender, cmid=cmid, type="text", body={}, ts=5, members=members)


def stored(conv: str, sender: int, cmid: str, seq: int) -> Message:
    return Message(id="9", conv=conv, seq=seq, sender=sender, type="text", body={}, ts=1, cmid=cmid)


def facts(hot: bool = False, **members: MemberFacts) -> GroupFacts:
    group = Group(
        id=7, name="g", avatar=None, notice="", owner=1, invite_policy="members", muted_all=False,
        dismissed=False, member_count=len(members), created_at=0,
    )
    return GroupFacts(group=group, members={int(k[1:]): v for k, v in members.items()}, hot=hot)


def test_split_keeps_the_first_of_each_key_and_refuses_non_canonical_ids_alone() -> None:
    batch = [new("p:1:2", 1, "a"), new("p:1:2", 1, "a"), new("g:07", 1, "b"), new("p:1:2", 2, "a")]
    existing = {(2, "a"): stored("p:1:2", 2, "a", 1)}
    fresh, rejected = plan.split(batch, existing)
    assert fresh == [batch[0]]
    assert set(rejected) == {(1, "b")} and rejected[(1, "b")].error.code is Code.INVALID_ID


def test_numbering_is_gap_free_per_conversation_in_batch_order() -> None:
    fresh = [new("p:1:2", 1, "a"), new("p:1:3", 1, "b"), new("p:1:2", 2, "c")]
    per_conv = plan.by_conversation(fresh)
    numbered = plan.number(per_conv, {"p:1:2": 10, "p:1:3": 1})
    assert {k: (m.conv, m.seq) for k, m in numbered.items()} == {
        (1, "a"): ("p:1:2", 9),
        (2, "c"): ("p:1:2", 10),
        (1, "b"): ("p:1:3", 1),
    }


def test_group_admission_refuses_alone_and_names_the_recipients() -> None:
    refuse_2 = lambda m, f: HubbubError(Code.FORBIDDEN, "no") if m.sender == 2 else None  # noqa: E731
    fresh = [new("g:7", 1, "a"), new("g:7", 2, "b"), new("g:8", 1, "c")]
    rejected: dict[plan.Key, Rejected] = {}
    everyone = {"u1": MemberFacts(role="owner", muted_until=0), "u3": MemberFacts(role="member", muted_until=0, dnd=True)}
    admitted, fanout = plan.admit_groups(fresh, {"g:7": facts(**everyone)}, ["g:7", "g:8"], refuse_2, rejected)
    assert admitted == [fresh[0]]
    assert rejected[(2, "b")].error.code is Code.FORBIDDEN and rejected[(1, "c")].error.code is Code.NOT_FOUND
    assert (fanout.recipients, fanout.quiet, fanout.hot) == ({"g:7": (1, 3)}, {"g:7": (3,)}, set())


def test_results_tell_a_resend_who_may_read_its_message_now() -> None:
    batch = [new("p:1:2", 1, "p"), new("g:7", 1, "g"), new("g:9", 1, "h"), new("p:1:2", 1, "n", (1, 2))]
    existing = {
        (1, "p"): stored("p:1:2", 1, "p", 3),
        (1, "g"): stored("g:7", 1, "g", 5),
        (1, "h"): stored("g:9", 1, "h", 5),
    }
    group_facts = {
        "g:7": facts(u1=MemberFacts(role="owner", muted_until=0), u4=MemberFacts(role="member", muted_until=0, dnd=True)),
        "g:9": facts(hot=True),
    }
    floors = {"g:7": {1: 0, 4: 2, 6: 5}}  # 6 joined after the message: not told of it
    new_one = {(1, "n"): stored("p:1:2", 1, "n", 4)}
    out = plan.results(batch, existing, {}, new_one, None, group_facts, floors)
    assert all(isinstance(r, Stored) for r in out)
    private, group, hot, fresh = (r for r in out if isinstance(r, Stored))
    assert (private.duplicate, private.recipients) == (True, (1, 2))
    assert (group.recipients, group.quiet) == ((1, 4), (4,))
    assert hot.hot and hot.recipients == ()
    assert (fresh.duplicate, fresh.recipients, fresh.message.seq) == (False, (1, 2), 4)
