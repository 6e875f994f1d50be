"""The storage contract (engines/storage/base.py), run against SQLite and a real PostgreSQL alike."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import msgspec
import pytest

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.storage.base import GroupChange, NewMessage, Rejected, Storage, Stored
from hubbub.engines.storage.sql import SqlStorage
from hubbub.services.batcher import Queued, SendBatcher
from tests import servers

_ids = itertools.count(1_000_000)
NOW = 1_764_000_000_000

MakeStorage = Callable[[], Awaitable[SqlStorage]]


def _sqla(url: str) -> str:
    return Config(database=url).database_url


@pytest.fixture(params=["sqlite", "sqlite-general-path", "postgresql", "postgresql-general-path"])
async def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStorage]:
    """Storages on one fresh database (several instances share it, as cluster nodes do). SQLite runs twice:
    with its one-call batch writer for private messages (the default) and with the general SQL path; so does
    PostgreSQL (its two-statement writer, pg_writer.py)."""
    if request.param.startswith("sqlite"):
        url = f"sqlite+aiosqlite:///{tmp_path / 'hubbub.db'}"
    else:
        pg: servers.PostgresServer = request.getfixturevalue("postgres_server")
        url = _sqla(pg.create_database())
    made: list[SqlStorage] = []

    async def make() -> SqlStorage:
        storage = SqlStorage(url)
        if request.param == "sqlite-general-path" and storage._batch_writer is not None:
            storage._batch_writer.close()
            storage._batch_writer = None
        if request.param == "postgresql-general-path" and storage._pg_writer is not None:
            await storage._pg_writer.close()
            storage._pg_writer = None
        await storage.start()
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


@pytest.fixture
async def storage(make_storage: MakeStorage) -> Storage:
    return await make_storage()


def new(conv: str, sender: int, cmid: str, text: str = "hi", members: tuple[int, ...] = ()) -> NewMessage:
    return NewMessage(
        id=next(_ids),
        conv=conv,
        sender=sender,
        cmid=cmid,
        type="text",
        body={"text": text},
        ts=NOW,
        members=members or tuple(int(x) for x in conv.split(":")[1:]),
    )


async def two_users(storage: Storage) -> tuple[int, int, str]:
    a = await storage.create_user("alice", "Alice", "h1", NOW)
    b = await storage.create_user("bob", "Bob", "h2", NOW)
    return a.id, b.id, f"p:{min(a.id, b.id)}:{max(a.id, b.id)}"


# -- accounts ---------------------------------------------------------------------------------------
async def test_accounts(storage: Storage) -> None:
    alice = await storage.create_user("Alice", "Ally", "hash", NOW)
    with pytest.raises(HubbubError) as err:
        await storage.create_user("ALICE", "x", "hash", NOW)
    assert err.value.code is Code.USERNAME_TAKEN
    account = await storage.account_by_username("alice")
    assert account is not None and account.user.id == alice.id and account.password_hash == "hash"
    assert account.banned is False
    assert (await storage.account(alice.id)) == account
    assert await storage.account(alice.id + 100) is None
    updated = await storage.update_profile(alice.id, {"nickname": "Al", "signature": "yo"})
    assert updated is not None and updated.nickname == "Al" and updated.signature == "yo"
    assert await storage.set_password(alice.id, "new", keep_sid=None) == []
    again = await storage.account(alice.id)
    assert again is not None and again.password_hash == "new"
    bob = await storage.create_user("bob_1", "Bobby", "h", NOW)
    assert [u.id for u in await storage.search_users("al", 10)] == [alice.id]
    assert [u.id for u in await storage.search_users("bob_", 10)] == [bob.id]
    assert await storage.search_users("b%", 10) == []
    assert set(await storage.users([alice.id, bob.id, 999])) == {alice.id, bob.id}


# -- sessions -----------------------------------------------------------------------------------------
async def test_sessions_and_refresh_rotation(storage: Storage) -> None:
    uid = (await storage.create_user("carol", "C", "h", NOW)).id
    await storage.create_session("s1", uid, "t1", NOW + 1000, NOW)
    await storage.create_session("s2", uid, "u1", NOW + 1000, NOW)
    token = await storage.refresh_token("t1")
    assert token is not None and token.sid == "s1" and token.user_id == uid
    assert not token.spent and not token.session_revoked
    assert await storage.rotate_refresh_token("t1", "t2", "s1", NOW + 2000)
    assert not await storage.rotate_refresh_token("t1", "t3", "s1", NOW + 2000)  # a replay
    spent = await storage.refresh_token("t1")
    assert spent is not None and spent.spent
    assert await storage.refresh_token("nope") is None
    assert await storage.session_active("s1")
    assert await storage.revoke_sessions(uid, keep_sid="s1") == ["s2"]
    assert not await storage.session_active("s2")
    await storage.revoke_session("s1")
    assert not await storage.session_active("s1")
    revoked = await storage.refresh_token("t2")
    assert revoked is not None and revoked.session_revoked
    assert not await storage.session_active("unknown")
    assert not await storage.create_session("s0", uid + 100, "t0", NOW + 1000, NOW)  # no such user


async def test_password_change_revokes_the_other_sessions_in_the_same_step(storage: Storage) -> None:
    uid = (await storage.create_user("pat", "P", "h", NOW)).id
    for sid in ("keep", "other1", "other2"):
        assert await storage.create_session(sid, uid, f"t-{sid}", NOW + 1000, NOW)
    assert sorted(await storage.set_password(uid, "h2", keep_sid="keep")) == ["other1", "other2"]
    assert await storage.session_active("keep") and not await storage.session_active("other1")
    account = await storage.account(uid)
    assert account is not None and account.password_hash == "h2"


async def test_a_ban_revokes_every_session_and_no_session_is_created_after_it(storage: Storage) -> None:
    uid = (await storage.create_user("ban_me", "B", "h", NOW)).id
    assert await storage.create_session("b1", uid, "tb1", NOW + 1000, NOW)
    record = await storage.ban_user(uid)
    assert record is not None and record.banned
    assert not await storage.session_active("b1")
    assert not await storage.create_session("b2", uid, "tb2", NOW + 1000, NOW)
    assert not await storage.session_active("b2")
    assert await storage.ban_user(uid + 100) is None
    # Logins and bans at once: whichever commits first, no session is left active after the ban.
    await storage.set_user_flags(uid, banned=False)
    results = await asyncio.gather(
        *(storage.create_session(f"r{i}", uid, f"tr{i}", NOW + 1000, NOW) for i in range(5)),
        storage.ban_user(uid),
        *(storage.create_session(f"q{i}", uid, f"tq{i}", NOW + 1000, NOW) for i in range(5)),
    )
    assert results[5] is not None
    for sid in [f"r{i}" for i in range(5)] + [f"q{i}" for i in range(5)]:
        assert not await storage.session_active(sid)


# -- friends ------------------------------------------------------------------------------------------
async def test_friends(storage: Storage) -> None:
    a, b, _ = await two_users(storage)
    request = await storage.create_friend_request(a, b, "hello", NOW)
    assert request.status == "pending" and request.from_user.id == a and request.to_user.id == b
    assert (await storage.pending_request(a, b)) == request
    incoming, outgoing = await storage.friend_requests(b)
    assert [r.id for r in incoming] == [request.id] and outgoing == []
    assert await storage.answer_friend_request(request.id, "accepted")
    assert not await storage.answer_friend_request(request.id, "declined")  # no longer pending
    found = await storage.friend_request(request.id)
    assert found is not None and found.status == "accepted"
    await storage.add_friendship(a, b, NOW)
    await storage.add_friendship(a, b, NOW)  # idempotent
    assert await storage.are_friends(a, b) and await storage.are_friends(b, a)
    assert await storage.friend_ids(a) == [b]
    assert [(u.id, since) for u, since in await storage.friends(b)] == [(a, NOW)]
    assert await storage.remove_friendship(b, a)
    assert not await storage.are_friends(a, b)
    assert not await storage.remove_friendship(a, b)


async def test_accepting_a_request_befriends_both_in_the_same_transaction(storage: Storage) -> None:
    a, b, _ = await two_users(storage)
    request = await storage.create_friend_request(a, b, "", NOW)
    assert await storage.accept_friend_request(request.id, NOW)
    assert await storage.are_friends(a, b) and await storage.are_friends(b, a)
    found = await storage.friend_request(request.id)
    assert found is not None and found.status == "accepted"
    assert not await storage.accept_friend_request(request.id, NOW + 1)  # answered: nothing changes
    assert [(u.id, since) for u, since in await storage.friends(a)] == [(b, NOW)]
    # A declined request befriends nobody when accepted late.
    c = (await storage.create_user("carl", "Carl", "h", NOW)).id
    late = await storage.create_friend_request(c, a, "", NOW)
    assert await storage.answer_friend_request(late.id, "declined")
    assert not await storage.accept_friend_request(late.id, NOW)
    assert not await storage.are_friends(a, c)


# -- messages -----------------------------------------------------------------------------------------
async def test_store_assigns_gap_free_seqs_per_conversation(storage: Storage) -> None:
    a, b, conv = await two_users(storage)
    c = (await storage.create_user("carl", "Carl", "h", NOW)).id
    other = f"p:{min(a, c)}:{max(a, c)}"
    first = await storage.store_messages([new(conv, a, "1"), new(other, a, "2"), new(conv, b, "3")])
    assert [(s.message.conv, s.message.seq, s.duplicate) for s in first] == [
        (conv, 1, False),
        (other, 1, False),
        (conv, 2, False),
    ]
    second = await storage.store_messages([new(conv, a, f"x{i}") for i in range(5)] + [new(other, c, "y")])
    assert [s.message.seq for s in second] == [3, 4, 5, 6, 7, 2]
    assert [m.seq for m in await storage.messages_after(conv, 0, 100)] == list(range(1, 8))


async def test_store_is_idempotent_on_sender_and_cmid(storage: Storage) -> None:
    a, b, conv = await two_users(storage)
    (first,) = await storage.store_messages([new(conv, a, "same", "one")])
    again = await storage.store_messages([new(conv, a, "same", "two"), new(conv, b, "same", "b's own")])
    assert again[0].duplicate and again[0].message == first.message
    assert not again[1].duplicate and again[1].message.seq == 2
    # duplicates inside one batch: stored once, the second occurrence reported as a duplicate
    batch = await storage.store_messages([new(conv, a, "twin"), new(conv, a, "twin"), new(conv, a, "z")])
    assert [(s.message.seq, s.duplicate) for s in batch] == [(3, False), (3, True), (4, False)]
    assert batch[0].message == batch[1].message
    assert [m.cmid for m in await storage.messages_after(conv, 0, 100)] == ["same", "same", "twin", "z"]


async def test_postgresql_stores_a_private_batch_in_two_statements(storage: Storage) -> None:
    """The cluster's hot path (pg_writer.py): a lookup and one write, none through SQLAlchemy; a
    conversation's first batch also creates it and its members."""
    if not isinstance(storage, SqlStorage) or storage._pg_writer is None:
        pytest.skip("PostgreSQL's fast path")
    writer = storage._pg_writer
    a, b, conv = await two_users(storage)
    general, fast = storage._queries, writer.queries
    first = await storage.store_messages([new(conv, a, "f1"), new(conv, b, "f2")])
    assert writer.queries - fast == 5 and storage._queries == general  # find, write, create, write
    fast = writer.queries
    more = await storage.store_messages([new(conv, a, "f3"), new(conv, a, "f1"), new(conv, b, "f4")])
    assert writer.queries - fast == 2 and storage._queries == general
    assert [(s.message.seq, s.duplicate) for s in [*first, *more]] == [
        (1, False), (2, False), (3, False), (1, True), (4, False),
    ]  # fmt: skip
    assert (await storage.member_state(conv, b)) is not None
    assert [m.cmid for m in await storage.messages_after(conv, 0, 10)] == ["f1", "f2", "f3", "f4"]


async def test_postgresql_fast_path_steps_aside_for_a_url_only_sqlalchemy_understands(
    postgres_server: servers.PostgresServer,
) -> None:
    """An option of SQLAlchemy's asyncpg dialect in the URL: asyncpg alone refuses it, so every batch takes
    the general path, and nothing is refused."""
    url = _sqla(postgres_server.create_database()) + "?prepared_statement_cache_size=100"
    storage = SqlStorage(url)
    await storage.start()
    try:
        a, b, conv = await two_users(storage)
        results = await storage.store_messages([new(conv, a, "u1")])
        results += await storage.store_messages([new(conv, b, "u2")])
        assert [s.message.seq for s in results if isinstance(s, Stored)] == [1, 2]
        assert storage._pg_writer is not None and storage._pg_writer.disabled
    finally:
        await storage.close()


async def test_a_duplicate_names_who_should_hear_of_it_now(storage: Storage) -> None:
    """A resend is pushed again (the first try may have died before pushing): storage says to whom, from the
    stored message, never from the resend, and not to members who joined after it (issue 12.5)."""
    a, b, conv = await two_users(storage)
    c = (await storage.create_user("cleo", "Cleo", "h", NOW)).id
    await storage.store_messages([new(conv, a, "p1")])
    # the resend names another conversation: still the stored one, and its pair
    (again,) = await storage.store_messages([new(f"p:{min(a, c)}:{max(a, c)}", a, "p1")])
    assert again.duplicate and again.message.conv == conv and set(again.recipients) == {a, b}

    notice = NewMessage(id=next(_ids), conv="", sender=a, cmid="~created", type="system", body={}, ts=NOW)
    group = (await storage.create_group(a, {"name": "g"}, [b], notice)).group
    gconv = f"g:{group.id}"
    (first,) = await storage.store_messages([new(gconv, b, "g1", members=(0,))])
    join = NewMessage(id=next(_ids), conv=gconv, sender=a, cmid="~join", type="system", body={}, ts=NOW)
    await storage.change_group(group.id, GroupChange(add={c: "member"}), join)
    (resent,) = await storage.store_messages([new(gconv, b, "g1", members=(0,))])
    assert resent.duplicate and resent.message == first.message and not resent.hot
    assert set(resent.recipients) == {a, b}  # not c, who joined after it


async def test_a_value_the_database_refuses_fails_only_its_message(storage: Storage) -> None:
    """PostgreSQL refuses a NUL in text and an integer past an ``integer`` column (SQLSTATE class 22); that
    once failed the whole batch as ``unavailable``. Through the batcher, only that message fails, with
    ``invalid_field`` (SQLite stores both: it has neither limit)."""
    a, b, conv = await two_users(storage)
    published: list[str] = []

    async def on_stored(batch: list[Queued], results: list[Stored | Rejected]) -> None:
        published.extend(r.message.cmid for r in results if isinstance(r, Stored))

    batcher = SendBatcher(storage, on_stored)
    bad = [new(conv, a, "nul\x00"), msgspec.structs.replace(new(conv, a, "far"), mentions=(2**40,))]
    good = [new(conv, b, f"ok{i}") for i in range(6)]
    futures = [batcher.submit(Queued(m)) for m in [good[0], bad[0], *good[1:3], bad[1], *good[3:]]]
    await batcher.close()
    results = await asyncio.gather(*futures, return_exceptions=True)
    for item, result in zip([good[0], bad[0], *good[1:3], bad[1], *good[3:]], results, strict=True):
        if item in good:
            assert isinstance(result, Message), result
        else:
            refused = isinstance(result, HubbubError) and result.code is Code.INVALID_FIELD
            assert isinstance(result, Message) or refused, result
    stored = [m.cmid for m in await storage.messages_after(conv, 0, 100)]
    assert [c for c in stored if c.startswith("ok")] == [f"ok{i}" for i in range(6)]
    assert published == stored


async def test_concurrent_batches_from_two_instances(make_storage: MakeStorage) -> None:
    """Two nodes storing into the same conversations at once: no seq repeats, none is missing."""
    one, two = await make_storage(), await make_storage()
    a, b, conv = await two_users(one)
    c = (await one.create_user("cid", "C", "h", NOW)).id
    other = f"p:{min(b, c)}:{max(b, c)}"

    async def writer(storage: Storage, tag: str) -> list[tuple[str, int]]:
        seqs = []
        for i in range(15):
            batch = [new(conv, a, f"{tag}a{i}"), new(other, c, f"{tag}c{i}"), new(conv, b, f"{tag}b{i}")]
            # and a retry of the other instance's cmid, which must not become a second message
            batch.append(new(conv, a, f"{'2' if tag == '1' else '1'}a{i}"))
            for s in await storage.store_messages(batch):
                if not s.duplicate:
                    seqs.append((s.message.conv, s.message.seq))
        return seqs

    results = await asyncio.gather(writer(one, "1"), writer(two, "2"), writer(one, "3"), writer(two, "4"))
    taken = [pair for r in results for pair in r]
    assert len(taken) == len(set(taken)), "a seq was given twice"
    for cv in (conv, other):
        stored = await one.messages_after(cv, 0, 1000)
        assert [m.seq for m in stored] == list(range(1, len(stored) + 1)), "seqs have holes"
        assert len({(m.sender, m.cmid) for m in stored}) == len(stored)
    assert len(await one.messages_after(conv, 0, 1000)) == 4 * 15 * 2
    assert len(await one.messages_after(other, 0, 1000)) == 4 * 15


async def test_pull_history_recall(storage: Storage) -> None:
    a, _, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, str(i), f"m{i}") for i in range(1, 11)])
    after = await storage.messages_after(conv, 3, 4)
    assert [m.seq for m in after] == [4, 5, 6, 7] and after[0].body == {"text": "m4"}
    assert [m.seq for m in await storage.messages_before(conv, 8, 3, 0)] == [5, 6, 7]
    assert [m.seq for m in await storage.messages_before(conv, 4, 10, 1)] == [2, 3]
    msg = await storage.message(conv, 2)
    assert msg is not None and msg.sender == a and msg.recalled is False and msg.ts == NOW
    notice = NewMessage(
        id=next(_ids),
        conv=conv,
        sender=a,
        cmid="~recall:2",
        type="recall",
        body={"seq": 2},
        ts=NOW,
        members=(),
    )
    first = await storage.recall_message(2, notice)
    assert isinstance(first, Stored) and not first.duplicate and first.message.seq == 11
    again = await storage.recall_message(2, msgspec.structs.replace(notice, id=next(_ids)))
    assert isinstance(again, Stored) and again.duplicate and again.message.seq == 11
    recalled = await storage.message(conv, 2)
    assert recalled is not None and recalled.recalled and recalled.body == {}
    # A refusal inside the transaction blanks nothing and stores no notice (frozen groups, issue 12 item 8).
    owner = await storage.create_user("gowner", "G", "h", NOW)
    created = await storage.create_group(owner.id, {"name": "g"}, [], new("", owner.id, "~g:1"))
    gconv = created.group.conv
    said = (await storage.store_messages([new(gconv, owner.id, "g1")]))[0]
    assert isinstance(said, Stored)
    refused = await storage.recall_message(
        said.message.seq,
        NewMessage(id=next(_ids), conv=gconv, sender=owner.id, cmid="~r", type="recall", body={}, ts=NOW),
        lambda _item, _facts: HubbubError(Code.GROUP_FROZEN, "frozen"),
    )
    assert isinstance(refused, Rejected) and refused.error.code is Code.GROUP_FROZEN
    kept = await storage.message(gconv, said.message.seq)
    assert kept is not None and not kept.recalled and kept.body == {"text": "hi"}
    assert len(await storage.messages_after(gconv, 0, 10)) == 2
    assert await storage.message(conv, 99) is None
    assert await storage.messages_after("p:98:99", 0, 10) == []


async def test_read_seqs_and_conversations(storage: Storage) -> None:
    a, b, conv = await two_users(storage)
    c = (await storage.create_user("cat", "Cat", "h", NOW)).id
    other = f"p:{min(a, c)}:{max(a, c)}"
    await storage.store_messages([new(conv, a, "1"), new(conv, b, "2"), new(conv, b, "3")])
    newer = new(other, c, "4")
    newer.ts = NOW + 10
    await storage.store_messages([newer])
    assert await storage.member_state(conv, a) == (0, 0)
    assert await storage.member_state(conv, c) is None
    assert await storage.set_read_seq(conv, a, 2) == 2
    assert await storage.set_read_seq(conv, a, 1) == 2  # never lower
    assert await storage.set_read_seq(conv, b, 50) == 3  # never past max_seq
    assert await storage.set_read_seq("p:97:98", a, 1) is None
    assert [(await storage.member_state(conv, uid) or (0, 0))[0] for uid in (a, b)] == [2, 3]
    assert await storage.peer_read_seqs(a) == {conv: 3, other: 0}
    states = await storage.conversations_of(a)
    assert [s.conv for s in states] == [other, conv]  # newest activity first
    mine = states[1]
    assert (mine.max_seq, mine.read_seq, mine.unread) == (3, 2, 1)
    assert mine.last is not None and mine.last.seq == 3 and mine.last.cmid == "3"
    assert states[0].unread == 1 and states[0].last is not None and states[0].last.sender == c
    assert await storage.conversations_of(9999) == []


async def test_unavailable_when_the_database_is_down(postgres_server: servers.PostgresServer) -> None:
    """PostgreSQL going away turns into UNAVAILABLE (nothing stored), quickly, and storage recovers."""
    url = postgres_server.create_database()
    proxy = await servers.TcpProxy(postgres_server.port).start()
    storage = SqlStorage(_sqla(url.replace(f":{postgres_server.port}/", f":{proxy.port}/")))
    await storage.start()
    try:
        a, _, conv = await two_users(storage)
        await storage.store_messages([new(conv, a, "before")])
        await proxy.cut()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for call in (
            storage.store_messages([new(conv, a, "during")]),
            storage.ping(),
            storage.messages_after(conv, 0, 10),
        ):
            with pytest.raises(HubbubError) as err:
                await asyncio.wait_for(call, 10)
            assert err.value.code is Code.UNAVAILABLE
        assert loop.time() - started < 5
        await proxy.start()  # the database is back, on the same port
        await storage.ping()
        assert [m.cmid for m in await storage.messages_after(conv, 0, 10)] == ["before"]
    finally:
        await proxy.cut()
        await storage.close()


async def test_group_rules_inside_transactions(storage: Storage) -> None:
    """Issue 12 items 8 and 12: a change_group check sees the locked group; receipts count only members who
    could see the message; a recalled message (or mention) is not unread."""
    owner = (await storage.create_user("gown", "O", "h", NOW)).id
    early = (await storage.create_user("gearly", "E", "h", NOW)).id
    late = (await storage.create_user("glate", "L", "h", NOW)).id
    created = await storage.create_group(owner, {"name": "g"}, [early], new("", owner, "~g:c"))
    gid, conv = created.group.id, created.group.conv
    before = (await storage.store_messages([new(conv, owner, "m1")]))[0]
    assert isinstance(before, Stored) and before.message.seq == 2

    from hubbub.engines.storage.base import GroupChange

    with pytest.raises(HubbubError) as refused:
        await storage.change_group(
            gid,
            GroupChange(add={late: "member"}),
            new(conv, owner, "~g:refused"),
            lambda group: HubbubError(Code.GROUP_FROZEN, "frozen") if group.id == gid else None,
        )
    assert refused.value.code is Code.GROUP_FROZEN
    assert await storage.group_member(gid, late) is None
    assert len(await storage.messages_after(conv, 0, 10)) == 2  # no notice either

    joined = msgspec.structs.replace(new(conv, owner, "~g:j"), type="system")
    await storage.change_group(gid, GroupChange(add={late: "member"}), joined, lambda _g: None)
    # The late member's read seq starts at their joining point, past seq 2, but they never saw it.
    assert await storage.readers(conv, 2, owner, 10) == (0, 1, [])
    await storage.set_read_seq(conv, early, 2)
    assert await storage.readers(conv, 2, owner, 10) == (1, 1, [early])
    assert (await storage.readers(conv, 3, owner, 10))[1] == 2  # the join notice: both could see it

    mention = new(conv, owner, "m2")
    mention.mentions = (early,)
    said = (await storage.store_messages([mention, new(conv, owner, "m3")]))[0]
    assert isinstance(said, Stored)
    state = next(s for s in await storage.conversations_of(early) if s.conv == conv)
    assert (state.unread, state.mention_seq) == (2, said.message.seq)
    notice = NewMessage(
        id=next(_ids),
        conv=conv,
        sender=owner,
        cmid="~rc",
        type="recall",
        body={"seq": said.message.seq},
        ts=NOW,
    )
    assert isinstance(await storage.recall_message(said.message.seq, notice), Stored)
    state = next(s for s in await storage.conversations_of(early) if s.conv == conv)
    assert (state.unread, state.mention_seq) == (1, 0)  # neither the recalled message nor its notice


async def test_do_not_disturb_facts(storage: Storage) -> None:
    """A group message's Stored names the recipients with do-not-disturb; the conversation list marks it."""
    owner = (await storage.create_user("downer", "O", "h", NOW)).id
    quiet = (await storage.create_user("dquiet", "Q", "h", NOW)).id
    created = await storage.create_group(owner, {"name": "g"}, [quiet], new("", owner, "~g:d"))
    await storage.set_member_prefs(created.group.id, quiet, {"dnd": True})
    said = (await storage.store_messages([new(created.group.conv, owner, "d1")]))[0]
    assert isinstance(said, Stored) and said.quiet == (quiet,) and set(said.recipients) == {owner, quiet}
    assert [s.dnd for s in await storage.conversations_of(quiet)] == [True]
    assert [s.dnd for s in await storage.conversations_of(owner)] == [False]


async def test_sqlite_stores_small_batches_on_the_loop_and_waits_for_a_held_lock_on_its_thread(
    storage: Storage,
) -> None:
    """The embedded hot path (sqlite_writer.py): a small batch is stored on the event loop, without the hop
    to a thread; while another connection holds SQLite's write lock, the loop never waits for it: the
    batch goes to the writer's thread, which waits its turn, and nothing is lost or reordered."""
    if not isinstance(storage, SqlStorage) or storage._batch_writer is None:
        pytest.skip("SQLite's fast path")
    import sqlite3

    writer = storage._batch_writer
    a, b, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, "l1")])
    assert (writer.inline_batches, writer.thread_batches) == (1, 0)

    holder = sqlite3.connect(writer.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another writer (a group message, a second process) holds the lock
    loop = asyncio.get_running_loop()
    blocked = asyncio.ensure_future(storage.store_messages([new(conv, b, "l2"), new(conv, a, "l3")]))
    await asyncio.sleep(0.2)
    assert not blocked.done() and writer.thread_batches == 1  # waiting on the thread, the loop is free
    follower = asyncio.ensure_future(storage.store_messages([new(conv, a, "l4")]))  # queues behind it
    await asyncio.sleep(0.05)
    assert not follower.done()
    await loop.run_in_executor(None, holder.execute, "COMMIT")  # (the loop stays free while it commits)
    holder.close()
    results = [*(await blocked), *(await follower)]
    assert [r.message.seq for r in results if isinstance(r, Stored)] == [2, 3, 4]
    assert [m.cmid for m in await storage.messages_after(conv, 0, 10)] == ["l1", "l2", "l3", "l4"]
    await storage.store_messages([new(conv, b, "l5")])
    assert writer.inline_batches == 2  # the lock is free again: back on the loop


async def test_sqlite_batches_over_the_inline_limit_are_stored_on_the_thread(storage: Storage) -> None:
    if not isinstance(storage, SqlStorage) or storage._batch_writer is None:
        pytest.skip("SQLite's fast path")
    writer = storage._batch_writer
    a, _, conv = await two_users(storage)
    big = [new(conv, a, f"big{i}") for i in range(writer.inline_max + 1)]
    results = await storage.store_messages(big)
    assert [r.message.seq for r in results if isinstance(r, Stored)] == list(range(1, len(big) + 1))
    assert (writer.inline_batches, writer.thread_batches) == (0, 1)


async def test_sqlite_a_small_batch_never_overtakes_one_on_the_thread(storage: Storage) -> None:
    """While a batch waits for the writer's thread, a later small batch is not stored on the loop ahead of
    it (the lock is free here: only the queue keeps them in order)."""
    if not isinstance(storage, SqlStorage) or storage._batch_writer is None:
        pytest.skip("SQLite's fast path")
    import threading

    writer = storage._batch_writer
    a, b, conv = await two_users(storage)
    gate = threading.Event()
    writer._thread.submit(gate.wait, 10)  # the thread busy with something that is not SQLite's lock
    big = asyncio.ensure_future(
        storage.store_messages([new(conv, a, f"big{i}") for i in range(writer.inline_max + 1)])
    )
    await asyncio.sleep(0.05)
    small = asyncio.ensure_future(storage.store_messages([new(conv, b, "small")]))
    await asyncio.sleep(0.05)
    assert not small.done() and writer.inline_batches == 0
    gate.set()
    results = [*(await big), *(await small)]
    assert [r.message.seq for r in results if isinstance(r, Stored)] == list(range(1, writer.inline_max + 3))


async def test_sqlite_a_lock_held_past_the_busy_timeout_is_unavailable(storage: Storage) -> None:
    """The thread waits its busy timeout for another writer's lock, then the batch fails as ``unavailable``
    (nothing stored, the client retries), not as an internal error."""
    if not isinstance(storage, SqlStorage) or storage._batch_writer is None:
        pytest.skip("SQLite's fast path")
    import sqlite3

    writer = storage._batch_writer
    a, _, conv = await two_users(storage)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(
        writer._thread, lambda: writer._thread_connection().execute("PRAGMA busy_timeout=100")
    )
    holder = sqlite3.connect(writer.path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(HubbubError) as failed:
            await storage.store_messages([new(conv, a, f"held{i}") for i in range(writer.inline_max + 1)])
        assert failed.value.code == Code.UNAVAILABLE
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert await storage.messages_after(conv, 0, 10) == []


async def test_sqlite_batches_stored_during_an_indexer_pass_queue_behind_it(storage: Storage) -> None:
    """An indexer pass on the writer's thread holds the write lock; a small batch stored meanwhile goes to
    the thread behind it rather than trying the lock from the loop first."""
    if not isinstance(storage, SqlStorage) or storage._batch_writer is None:
        pytest.skip("SQLite's fast path")
    import threading

    writer = storage._batch_writer
    a, b, conv = await two_users(storage)
    await storage.store_messages([new(conv, a, "first")])
    inline = writer.inline_batches
    gate = threading.Event()
    writer._thread.submit(gate.wait, 10)
    indexing = asyncio.ensure_future(storage.index_messages(100))
    await asyncio.sleep(0.05)
    small = asyncio.ensure_future(storage.store_messages([new(conv, b, "during")]))
    await asyncio.sleep(0.05)
    assert not small.done() and writer.inline_batches == inline
    gate.set()
    assert (await indexing).indexed == 1
    stored = (await small)[0]
    assert isinstance(stored, Stored) and stored.message.seq == 2
