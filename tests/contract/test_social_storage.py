"""The social storage contract (engines/storage/base_social.py, issue 15), on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_social import ChatPrefs, ChatPrefsChange, Social
from tests.contract import test_storage as storage_contract
from tests.contract.test_storage import NOW, MakeStorage

make_storage = storage_contract.make_storage
storage = storage_contract.storage


async def _users(storage: Storage, *names: str) -> list[int]:
    return [(await storage.create_user(n, n, "h", NOW)).id for n in names]


async def test_blocks_are_idempotent_directional_and_decline_pending_requests(storage: Storage) -> None:
    a, b, c = await _users(storage, "blk_a", "blk_b", "blk_c")
    request = await storage.create_friend_request(b, a, "hi", NOW)
    assert await storage.block(a, b, NOW) == NOW
    assert await storage.block(a, b, NOW + 50) == NOW  # again: the first since stays
    assert await storage.pending_request(b, a) is None  # the request was declined with the block
    assert request.status == "pending"
    assert await storage.blocking(a, b) and await storage.blocking(b, a)
    assert not await storage.blocking(a, c)
    assert await storage.blockers_among(b, [a, c]) == {a}  # a blocks b
    assert await storage.blockers_among(a, [b, c]) == set()  # nobody blocks a
    assert await storage.blockers_among(b, []) == set()
    await storage.block(a, c, NOW + 10)
    assert [(u.id, since) for u, since in await storage.blocks(a)] == [(c, NOW + 10), (b, NOW)]
    assert await storage.unblock(a, b) and not await storage.unblock(a, b)
    assert not await storage.blocking(a, b)


async def test_remarks(storage: Storage) -> None:
    a, b, c = await _users(storage, "rm_a", "rm_b", "rm_c")
    await storage.set_remark(a, b, "Bobby")
    await storage.set_remark(a, c, "Cee")
    await storage.set_remark(a, b, "Robert")
    assert await storage.remarks(a) == {b: "Robert", c: "Cee"}
    assert await storage.remarks(a, [b]) == {b: "Robert"}
    assert await storage.remarks(a, []) == {}
    assert await storage.remarks(b) == {}  # private to its owner
    await storage.set_remark(a, c, "")
    assert await storage.remarks(a) == {b: "Robert"}


async def test_chat_prefs_change_only_what_is_given(storage: Storage) -> None:
    (a,) = await _users(storage, "cp_a")
    conv = "p:1:2"
    first = await storage.set_chat_prefs(a, conv, ChatPrefsChange(pinned=True, muted=True), NOW, 5)
    assert first == ChatPrefs(conv=conv, pinned=NOW, muted=True, updated_at=NOW)
    again = await storage.set_chat_prefs(a, conv, ChatPrefsChange(pinned=True, archived=True), NOW + 1, 5)
    assert again.pinned == NOW and again.muted and again.archived  # pinning again keeps the pin time
    assert await storage.chat_prefs(a) == [again]
    assert await storage.muted_by(conv, [a, 999]) == {a}
    await storage.set_chat_prefs(a, conv, ChatPrefsChange(marked_unread=True), NOW + 2, 5)
    cleared = await storage.clear_marked_unread(a, conv, NOW + 3)
    assert cleared is not None and not cleared.marked_unread and cleared.muted
    assert await storage.clear_marked_unread(a, conv, NOW + 4) is None  # nothing to clear
    back = ChatPrefsChange(pinned=False, muted=False, archived=False)
    assert await storage.set_chat_prefs(a, conv, back, NOW + 5, 5) == ChatPrefs(conv=conv, updated_at=NOW + 5)
    assert await storage.chat_prefs(a) == []  # all defaults: no row


async def test_pins_are_capped_atomically(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    (a,) = await _users(one, "pin_a")
    for i in range(2):
        await one.set_chat_prefs(a, f"g:{i + 1}", ChatPrefsChange(pinned=True), NOW, 3)

    async def pin(storage: Storage, conv: str) -> object:
        try:
            return await storage.set_chat_prefs(a, conv, ChatPrefsChange(pinned=True), NOW, 3)
        except HubbubError as exc:
            return exc

    results = await asyncio.gather(pin(one, "g:10"), pin(two, "g:11"))
    refused = [r for r in results if isinstance(r, HubbubError)]
    assert len(refused) == 1 and refused[0].code is Code.CONFLICT
    assert len([p for p in await one.chat_prefs(a) if p.pinned]) == 3
    with pytest.raises(HubbubError) as over:
        await one.set_chat_prefs(a, "g:12", ChatPrefsChange(pinned=True), NOW, 3)
    assert over.value.code is Code.CONFLICT
    assert await one.chat_prefs(a, "g:12") == []


async def test_last_seen_and_privacy(storage: Storage) -> None:
    a, b = await _users(storage, "ls_a", "ls_b")
    assert await storage.social([a, b]) == {a: Social(), b: Social()}
    await storage.set_last_seen(a, NOW)
    await storage.set_last_seen_privacy(a, "nobody")
    await storage.set_last_seen_privacy(b, "everyone")
    assert await storage.social([a, b]) == {a: Social("nobody", NOW), b: Social("everyone", 0)}
    assert await storage.social([]) == {}


async def test_sessions_list_touch_and_revoke(storage: Storage) -> None:
    a, b = await _users(storage, "ss_a", "ss_b")
    later = NOW + 30 * 86_400_000
    assert await storage.create_session("s1", a, "t1", later, NOW)
    assert await storage.create_session("s2", a, "t2", later, NOW + 5)
    assert await storage.create_session("old", a, "t3", NOW + 1, NOW)  # its refresh token expires
    assert await storage.create_session("b1", b, "t4", later, NOW)
    await storage.touch_session("s1", NOW + 100)
    rows = await storage.live_sessions(a, NOW + 10)
    assert [(r.sid, r.last_active) for r in rows] == [("s2", NOW + 5), ("s1", NOW + 100)]
    assert not await storage.revoke_user_session(a, "b1")  # not a's
    assert await storage.revoke_user_session(a, "s2")
    assert not await storage.revoke_user_session(a, "s2")  # already over
    assert [r.sid for r in await storage.live_sessions(a, NOW + 10)] == ["s1"]
    await storage.update_password_hash(a, "new-hash")
    account = await storage.account(a)
    assert account is not None and account.password_hash == "new-hash"
    assert await storage.session_active("s1")  # a new password that ends nothing


async def test_closing_an_account_takes_its_social_rows(storage: Storage) -> None:
    a, b = await _users(storage, "cl_a", "cl_b")
    await storage.block(a, b, NOW)
    await storage.block(b, a, NOW)
    await storage.set_remark(a, b, "Bee")
    await storage.set_remark(b, a, "Ay")
    await storage.set_chat_prefs(a, "p:1:2", ChatPrefsChange(archived=True), NOW, 5)
    await storage.set_last_seen(a, NOW)
    assert await storage.close_account(a, NOW) is not None
    assert await storage.blocks(a) == [] and await storage.blocks(b) == []
    assert await storage.remarks(a) == {} and await storage.remarks(b) == {}
    assert await storage.chat_prefs(a) == []
    assert await storage.social([a]) == {a: Social()}
