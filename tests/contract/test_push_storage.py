"""The Web Push storage contract (engines/storage/base_push.py), on SQLite and a real PostgreSQL."""

from __future__ import annotations

import asyncio

from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_push import NewPush, PushDevice, PushPrefs
from tests.contract import test_storage as storage_contract
from tests.contract.test_storage import NOW, MakeStorage

make_storage = storage_contract.make_storage
storage = storage_contract.storage


async def _user_with_device(storage: Storage, name: str, endpoint: str) -> tuple[int, PushDevice]:
    user = await storage.create_user(name, name.title(), "h", NOW)
    sid = f"sid-{name}"
    assert await storage.create_session(sid, user.id, f"tok-{name}", NOW + 10**9, NOW)
    device = await storage.add_push_device(
        PushDevice(
            id=f"dev-{name}", user_id=user.id, sid=sid, kind="webpush", endpoint=endpoint, created_at=NOW
        )
    )
    return user.id, device


def _push(device: PushDevice, seq: int, conv: str = "p:1:2", mention: bool = False) -> NewPush:
    return NewPush(device.id, device.user_id, conv, seq, 1, "Ann", f"text {seq}", mention)


async def test_a_burst_coalesces_into_one_row_and_a_resend_changes_nothing(storage: Storage) -> None:
    _, device = await _user_with_device(storage, "bob", "https://push.test/a")
    assert await storage.queue_pushes([_push(device, 1), _push(device, 2)], NOW, 5000) == 1
    assert await storage.queue_pushes([_push(device, 3)], NOW, 5000) == 1
    assert await storage.queue_pushes([_push(device, 3), _push(device, 2)], NOW, 5000) == 0  # never again
    jobs = await storage.claim_pushes("n1", NOW, 30_000, 10)
    assert [(j.kind, j.seq, j.count, j.text) for j in jobs] == [("msg", 3, 3, "text 3")]
    assert await storage.claim_pushes("n2", NOW, 30_000, 10) == []  # leased to n1
    assert await storage.finish_push(jobs[0], NOW, sent=True, window_ms=5000)
    # Sent: seq 3 is never queued again; seq 4 waits out the window after the last push.
    assert await storage.queue_pushes([_push(device, 3)], NOW + 1, 5000) == 0
    assert await storage.queue_pushes([_push(device, 4)], NOW + 1, 5000) == 1
    assert await storage.claim_pushes("n1", NOW + 1000, 30_000, 10) == []
    later = await storage.claim_pushes("n1", NOW + 5000, 30_000, 10)
    assert [(j.seq, j.count) for j in later] == [(4, 4)]  # the notification is updated with the count


async def test_an_expired_lease_is_taken_over_and_the_old_holder_cannot_finish(storage: Storage) -> None:
    _, device = await _user_with_device(storage, "bob", "https://push.test/a")
    await storage.queue_pushes([_push(device, 1)], NOW, 5000)
    first = await storage.claim_pushes("n1", NOW, 1000, 10)
    second = await storage.claim_pushes("n2", NOW + 1000, 1000, 10)
    assert len(first) == len(second) == 1
    assert not await storage.finish_push(first[0], NOW + 1500, sent=True)
    assert await storage.finish_push(second[0], NOW + 1500, sent=True)


async def test_retry_puts_a_job_back_with_its_attempts(storage: Storage) -> None:
    _, device = await _user_with_device(storage, "bob", "https://push.test/a")
    await storage.queue_pushes([_push(device, 1)], NOW, 5000)
    job = (await storage.claim_pushes("n1", NOW, 30_000, 10))[0]
    assert await storage.finish_push(job, NOW, sent=False, retry_at=NOW + 2000)
    assert await storage.claim_pushes("n1", NOW + 1999, 30_000, 10) == []
    again = await storage.claim_pushes("n1", NOW + 2000, 30_000, 10)
    assert [(j.seq, j.attempts) for j in again] == [(1, 1)]


async def test_a_read_clears_what_was_shown_and_cancels_what_was_not(storage: Storage) -> None:
    user, device = await _user_with_device(storage, "bob", "https://push.test/a")
    await storage.queue_pushes([_push(device, 1), _push(device, 1, conv="p:1:3")], NOW, 5000)
    for job in await storage.claim_pushes("n1", NOW, 30_000, 10):
        if job.conv == "p:1:2":
            await storage.finish_push(job, NOW, sent=True)
        else:
            await storage.finish_push(job, NOW, sent=False, retry_at=NOW)
    assert len(await storage.notifications_of(device.id)) == 2
    assert await storage.queue_clears(user, "p:1:2", 1, NOW) == 1
    assert await storage.queue_clears(user, "p:1:3", 1, NOW) == 0  # never shown: nothing to clear
    jobs = await storage.claim_pushes("n1", NOW, 30_000, 10)
    assert [(j.conv, j.kind, j.count) for j in jobs] == [("p:1:2", "clear", 0)]
    assert await storage.notifications_of(device.id) == []


async def test_devices_follow_their_session_and_endpoint(storage: Storage) -> None:
    bob, device = await _user_with_device(storage, "bob", "https://push.test/a")
    await storage.queue_pushes([_push(device, 1)], NOW, 5000)
    assert [d.id for d in await storage.push_devices(bob)] == [device.id]
    assert [t.device_id for t in await storage.push_targets([bob])] == [device.id]
    # The same browser, now logged in as carol: the device moves, and bob's queued push is gone.
    carol, moved = await _user_with_device(storage, "carol", "https://push.test/a")
    assert moved.id == device.id and moved.user_id == carol
    assert await storage.push_devices(bob) == []
    assert await storage.claim_pushes("n1", NOW, 30_000, 10) == []
    await storage.revoke_session("sid-carol")  # logout
    assert await storage.push_targets([carol]) == []
    assert await storage.purge_revoked_push_devices() == 1
    assert not await storage.remove_push_device(device.id)


async def test_removal_is_only_by_the_owner(storage: Storage) -> None:
    bob, device = await _user_with_device(storage, "bob", "https://push.test/a")
    assert not await storage.remove_push_device(device.id, bob + 1)
    assert await storage.remove_push_device(device.id, bob)


async def test_prefs_default_and_round_trip(storage: Storage) -> None:
    assert await storage.push_prefs(7) == PushPrefs()
    prefs = PushPrefs(preview="none", mentions_through_mute=False, hot_groups="all")
    await storage.set_push_prefs(7, prefs)
    await storage.set_push_prefs(7, prefs)
    assert await storage.push_prefs(7) == prefs


async def test_two_nodes_claiming_at_once_take_disjoint_rows(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    _, device = await _user_with_device(one, "bob", "https://push.test/a")
    await one.queue_pushes([_push(device, 1, conv=f"p:1:{n}") for n in range(2, 42)], NOW, 5000)
    got = await asyncio.gather(
        *(s.claim_pushes(s_id, NOW, 30_000, 7) for s, s_id in [(one, "a"), (two, "b")] * 4)
    )
    convs = [j.conv for jobs in got for j in jobs]
    assert len(convs) == len(set(convs)) == 40
