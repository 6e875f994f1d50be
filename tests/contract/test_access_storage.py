"""The access-control storage contract (engines/storage/base_access.py), on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_access import AuditQuery, GroupLink, Invite, Report
from tests.contract import test_storage as storage_contract
from tests.contract.test_storage import NOW, MakeStorage

#: The storage contract's fixtures: SQLite (both write paths) and a real PostgreSQL.
make_storage = storage_contract.make_storage
storage = storage_contract.storage


async def test_an_invites_last_use_goes_to_one_sign_up_only(make_storage: MakeStorage) -> None:
    """Two nodes racing for the one use left: one account, one invite_invalid, nothing half-made."""
    one, two = await make_storage(), await make_storage()
    owner = await one.create_user("inviter", "I", "h", NOW)
    await one.create_invite(Invite(code="race", created_by=owner.id, max_uses=1, created_at=NOW))

    async def sign_up(storage: Storage, name: str) -> object:
        try:
            return await storage.create_user_with_invite(name, name, "h", NOW, "race")
        except HubbubError as exc:
            return exc

    results = await asyncio.gather(sign_up(one, "racer_a"), sign_up(two, "racer_b"))
    made = [r for r in results if not isinstance(r, HubbubError)]
    refused = [r for r in results if isinstance(r, HubbubError)]
    assert len(made) == 1 and len(refused) == 1
    assert refused[0].code is Code.INVITE_INVALID and refused[0].extra["reason"] == "used_up"
    invite = await one.invite("race")
    assert invite is not None and invite.uses == 1
    loser = "racer_b" if made[0].username == "racer_a" else "racer_a"  # type: ignore[attr-defined]
    assert await one.account_by_username(loser) is None


async def test_a_taken_username_uses_nothing_up(storage: Storage) -> None:
    owner = await storage.create_user("taken", "T", "h", NOW)
    await storage.create_invite(Invite(code="keep", created_by=owner.id, max_uses=1, created_at=NOW))
    with pytest.raises(HubbubError) as taken:
        await storage.create_user_with_invite("taken", "T", "h", NOW, "keep")
    assert taken.value.code is Code.USERNAME_TAKEN
    invite = await storage.invite("keep")
    assert invite is not None and invite.uses == 0


@pytest.mark.parametrize(
    ("invite", "reason"),
    [
        (Invite(code="gone", created_by=1, max_uses=3, revoked=True, created_at=NOW), "revoked"),
        (Invite(code="old", created_by=1, max_uses=3, expires_at=NOW - 1, created_at=NOW), "expired"),
        (Invite(code="full", created_by=1, max_uses=2, uses=2, created_at=NOW), "used_up"),
    ],
)
async def test_invite_refusals_name_their_reason(storage: Storage, invite: Invite, reason: str) -> None:
    await storage.create_invite(invite)
    with pytest.raises(HubbubError) as refused:
        await storage.create_user_with_invite("nobody", "N", "h", NOW, invite.code)
    assert refused.value.extra["reason"] == reason
    assert await storage.account_by_username("nobody") is None
    with pytest.raises(HubbubError) as unknown:
        await storage.create_user_with_invite("nobody", "N", "h", NOW, "no-such-code")
    assert unknown.value.extra["reason"] == "unknown"


async def test_link_uses_are_counted_atomically_and_given_back(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    await one.create_link(GroupLink(code="five", group_id=1, created_by=1, max_uses=5, created_at=NOW))
    taken = await asyncio.gather(*(s.take_link_use("five", NOW) for s in (one, two) * 5))
    assert sum(taken) == 5
    link = await one.link("five")
    assert link is not None and link.uses == 5
    await one.give_back_link_use("five")
    assert await two.take_link_use("five", NOW) is True
    assert await one.take_link_use("five", NOW) is False
    await one.create_link(GroupLink(code="late", group_id=1, created_by=1, expires_at=NOW, created_at=NOW))
    assert await one.take_link_use("late", NOW) is False  # expired at NOW
    assert await one.revoke_link(1, "five") is True
    assert await one.revoke_link(2, "late") is False  # another group's code
    assert [x.code for x in await one.links(1)] == ["late"]


async def test_requests_and_reports_are_answered_once(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    user = await one.create_user("asker", "A", "h", NOW)
    first = await one.create_join_request(7, user.id, "code", NOW)
    again = await two.create_join_request(7, user.id, "code", NOW)
    assert first.id == again.id and first.status == "pending" and first.user.username == "asker"
    answers = await asyncio.gather(
        one.decide_join_request(first.id, "approved", 1, NOW),
        two.decide_join_request(first.id, "declined", 2, NOW),
    )
    assert sorted(answers) == [False, True]
    assert await one.join_requests(7, "pending", 10) == []

    report = await one.create_report(
        Report(
            id=0,
            reporter=user.id,
            kind="user",
            target="9",
            reason="spam",
            snapshot={"user": {"id": 9}},
            status="open",
            created_at=NOW,
        )
    )
    assert report.id > 0 and report.snapshot == {"user": {"id": 9}}
    closed = await asyncio.gather(
        one.resolve_report(report.id, "actioned", "ban", 1, "", NOW),
        two.resolve_report(report.id, "dismissed", "", 2, "", NOW),
    )
    assert sorted(closed) == [False, True]
    assert [r.id for r in await one.reports("open", None, 0, 10)] == []
    assert [r.id for r in await one.reports("", user.id, 0, 10)] == [report.id]


async def test_the_audit_log_pages_both_ways(storage: Storage) -> None:
    ids = [
        await storage.append_audit(
            NOW + i, 1, "user.ban" if i % 2 else "user.unban", f"user:{i}", "", "::1", {"i": i}
        )
        for i in range(5)
    ]
    newest = await storage.audit(AuditQuery(), 0, None, 2)
    assert [e.id for e in newest] == [ids[4], ids[3]]
    older = await storage.audit(AuditQuery(), newest[-1].id, None, 10)
    assert [e.id for e in older] == [ids[2], ids[1], ids[0]]
    forward = await storage.audit(AuditQuery(action="user.ban"), 0, 0, 10)
    assert [e.detail["i"] for e in forward] == [1, 3]
    assert [e.id for e in await storage.audit(AuditQuery(target="user:2", since=NOW), 0, None, 10)] == [
        ids[2]
    ]


async def test_timed_bans_lift_only_when_over_and_closing_anonymises(storage: Storage) -> None:
    user = await storage.create_user("closing", "C", "h", NOW)
    assert await storage.create_session("s1", user.id, "t1", NOW + 10_000, NOW)
    assert await storage.ban_until(user.id, NOW + 1000, "spam")
    assert not await storage.session_active("s1")
    assert not await storage.lift_expired_ban(user.id, NOW + 999)
    assert await storage.lift_expired_ban(user.id, NOW + 1000)
    assert await storage.ban_until(user.id, 0, "for ever")
    assert not await storage.lift_expired_ban(user.id, NOW + 10**9)
    assert await storage.close_account(user.id, NOW) is not None  # the sessions it revoked (none left here)
    record = await storage.user_record(user.id)
    assert record is not None and record.deleted and record.user.nickname == "Deleted user" and record.banned
    assert await storage.account_by_username("closing") is None
    assert await storage.has_real_users()
