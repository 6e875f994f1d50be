"""The search contract (engines/storage/base.py, SearchStorage), run against SQLite and PostgreSQL alike:
every visibility rule, CJK substrings, filters, paging, the indexer's watermark and re-indexing."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from sqlalchemy import text

from hubbub.config import Config
from hubbub.core import searchtext
from hubbub.engines.storage import sql_search
from hubbub.engines.storage.base import GroupChange, NewMessage, SearchQuery, Stored
from hubbub.engines.storage.base_actions import ActionResult, MessageChange
from hubbub.engines.storage.sql import SqlStorage
from tests import servers

_ids = itertools.count(5_000_000)
NOW = 1_764_000_000_000

MakeStorage = Callable[[], Awaitable[SqlStorage]]


@pytest.fixture(params=["sqlite", "postgresql"])
async def make_storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MakeStorage]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'hubbub.db'}"
    else:
        pg: servers.PostgresServer = request.getfixturevalue("postgres_server")
        url = Config(database=pg.create_database()).database_url
    made: list[SqlStorage] = []

    async def make() -> SqlStorage:
        storage = SqlStorage(url)
        await storage.start()
        made.append(storage)
        return storage

    yield make
    for storage in made:
        await storage.close()


@pytest.fixture
async def storage(make_storage: MakeStorage) -> SqlStorage:
    return await make_storage()


def new(
    conv: str, sender: int, cmid: str, body: Any = "hi", *, kind: str = "text", ts: int = NOW
) -> NewMessage:
    return NewMessage(
        id=next(_ids),
        conv=conv,
        sender=sender,
        cmid=cmid,
        type=kind,
        body={"text": body} if isinstance(body, str) else body,
        ts=ts,
        members=tuple(int(x) for x in conv.split(":")[1:]) if conv.startswith("p:") else (),
    )


async def send(storage: SqlStorage, *messages: NewMessage) -> list[int]:
    results = await storage.store_messages(list(messages))
    seqs = []
    for result in results:
        assert isinstance(result, Stored)
        seqs.append(result.message.seq)
    return seqs


async def index_all(storage: SqlStorage) -> None:
    while (await storage.index_messages(100)).indexed:
        pass


async def find(storage: SqlStorage, user: int, query: str, **kw: Any) -> list[str]:
    page = await storage.search_messages(SearchQuery(user_id=user, terms=searchtext.terms_of(query), **kw))
    return [searchtext.searchable_text(h.message.type, h.message.body) for h in page.hits]


async def users(storage: SqlStorage, *names: str) -> list[int]:
    return [(await storage.create_user(n, n, "h", NOW)).id for n in names]


def pconv(a: int, b: int) -> str:
    return f"p:{min(a, b)}:{max(a, b)}"


async def test_cjk_and_latin_substrings(storage: SqlStorage) -> None:
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    await send(
        storage,
        new(conv, a, "1", "我们明天去北京开会"),
        new(conv, b, "2", "周五的会议纪要"),
        new(conv, a, "3", "Meeting notes for Friday"),
        new(conv, b, "4", "東京で会いましょう"),
        new(conv, a, "5", "회의는 내일입니다"),
    )
    await index_all(storage)
    assert await find(storage, a, "北京") == ["我们明天去北京开会"]  # two characters: the short path
    assert await find(storage, b, "会议纪要") == ["周五的会议纪要"]  # four: the trigram index
    assert await find(storage, a, "meet") == ["Meeting notes for Friday"]  # case-insensitive, word prefix
    assert await find(storage, a, "FRIDAY notes") == ["Meeting notes for Friday"]  # every term, any order
    assert await find(storage, a, "東京") == ["東京で会いましょう"]
    assert await find(storage, a, "회의는") == ["회의는 내일입니다"]
    assert await find(storage, a, "会") == [
        "東京で会いましょう",
        "周五的会议纪要",
        "我们明天去北京开会",
    ]  # newest 1st
    assert await find(storage, a, "北京 会议") == []  # both terms must be in one message
    assert await find(storage, a, "nothing-like-this") == []


async def test_query_syntax_is_data(storage: SqlStorage) -> None:
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    await send(storage, new(conv, a, "1", 'he said "yes" OR NEAR(no) 100% a_b *'))
    await index_all(storage)
    for query in ['"yes"', "OR", "NEAR(no)", "100%", "a_b", "*", '"', "%", "_", "\\", "'", "(", "-", "^x"]:
        found = await find(storage, a, query)
        assert found == (
            ['he said "yes" OR NEAR(no) 100% a_b *'] if query not in ("\\", "'", "-", "^x") else []
        )
    assert await find(storage, a, "10_") == []  # "_" is not a wildcard
    assert await find(storage, a, "1%0") == []  # nor "%"


async def test_only_members_see(storage: SqlStorage) -> None:
    a, b, c = await users(storage, "ann", "bob", "cat")
    await send(storage, new(pconv(a, b), a, "1", "secret plans"))
    await index_all(storage)
    assert await find(storage, a, "secret") == ["secret plans"]
    assert await find(storage, b, "secret") == ["secret plans"]
    assert await find(storage, c, "secret") == []
    assert await find(storage, c, "secret", conv=pconv(a, b)) == []
    assert await find(storage, c, "se") == []  # the short path applies the same rule


async def test_membership_windows(storage: SqlStorage) -> None:
    """A late joiner sees nothing from before they joined; a removed member nothing at all (as history);
    one who comes back sees only from their return."""
    owner, early, late = await users(storage, "own", "early", "late")
    created = await storage.create_group(
        owner, {"name": "g"}, [early], new("", owner, "~g:c", {}, kind="system")
    )
    gid, conv = created.group.id, created.group.conv
    await send(storage, new(conv, owner, "before", "budget before the join"))
    joined = new(conv, owner, "~j", {}, kind="system")
    await storage.change_group(gid, GroupChange(add={late: "member"}), joined)
    await send(storage, new(conv, owner, "after", "budget after the join"))
    await index_all(storage)
    assert await find(storage, late, "budget") == ["budget after the join"]
    assert await find(storage, late, "bu") == ["budget after the join"]
    assert await find(storage, early, "budget") == ["budget after the join", "budget before the join"]

    await storage.change_group(gid, GroupChange(remove=(late,)), new(conv, owner, "~r", {}, kind="system"))
    await send(storage, new(conv, owner, "gone", "budget once they left"))
    await index_all(storage)
    assert await find(storage, late, "budget") == []
    assert await find(storage, late, "bu") == []
    assert len(await find(storage, early, "budget")) == 3

    await storage.change_group(
        gid, GroupChange(add={late: "member"}), new(conv, owner, "~b", {}, kind="system")
    )
    await send(storage, new(conv, owner, "back", "budget on their return"))
    await index_all(storage)
    assert await find(storage, late, "budget") == ["budget on their return"]


async def test_recalled_and_notices_are_not_found(storage: SqlStorage) -> None:
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    seq, _ = await send(
        storage, new(conv, a, "1", "regret this message"), new(conv, a, "2", "keep this message")
    )
    await index_all(storage)
    assert len(await find(storage, a, "message")) == 2
    notice = new(conv, a, "~recall", {"seq": seq}, kind="recall")
    notice.members = ()
    assert isinstance(await storage.recall_message(seq, notice), Stored)
    # Gone at query time already, before any indexing...
    assert await find(storage, a, "message") == ["keep this message"]
    assert await find(storage, b, "regret") == []
    assert await find(storage, b, "re") == []
    # ...and from the index once the entry is rewritten.
    await storage.reindex_message(conv, seq)
    await index_all(storage)
    assert await find(storage, a, "regret") == []


async def test_filters_and_file_names(storage: SqlStorage) -> None:
    a, b, c = await users(storage, "ann", "bob", "cat")
    ab, ac = pconv(a, b), pconv(a, c)
    upload = {"upload": "u1", "kind": "file", "name": "Quarterly-Report.pdf", "size": 10, "mime": "x"}
    await send(
        storage,
        new(ab, a, "1", "report draft", ts=NOW),
        new(ab, b, "2", "report final", ts=NOW + 1000),
        new(ac, c, "3", "report from cat", ts=NOW + 2000),
        new(ab, a, "4", upload, kind="file", ts=NOW + 3000),
        new(
            ab,
            b,
            "5",
            {**upload, "name": "photo.png", "kind": "image", "caption": "report cover"},
            kind="image",
            ts=NOW + 4000,
        ),
    )
    await index_all(storage)
    assert len(await find(storage, a, "report")) == 5
    assert await find(storage, a, "quarterly") == ["Quarterly-Report.pdf"]
    assert await find(storage, a, "report", conv=ac) == ["report from cat"]
    assert await find(storage, a, "report", sender=b) == ["report cover\nphoto.png", "report final"]
    assert await find(storage, a, "report", kinds=("file",)) == ["Quarterly-Report.pdf"]
    assert await find(storage, a, "report", kinds=("image", "file")) == [
        "report cover\nphoto.png",
        "Quarterly-Report.pdf",
    ]
    assert await find(storage, a, "report", since=NOW + 1000, until=NOW + 3000) == [
        "report from cat",
        "report final",
    ]
    assert await find(storage, a, "re", sender=c) == ["report from cat"]


async def test_paging_newest_first(storage: SqlStorage) -> None:
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    await send(storage, *(new(conv, a, str(i), f"item number {i}") for i in range(25)))
    await index_all(storage)
    seen: list[str] = []
    before = None
    for _ in range(10):
        page = await storage.search_messages(SearchQuery(user_id=a, terms=["item"], limit=10, before=before))
        seen += [h.message.body["text"] for h in page.hits]
        before = page.next_before
        if before is None:
            break
    assert seen == [f"item number {i}" for i in reversed(range(25))]


async def test_short_terms_scan_a_bounded_window(storage: SqlStorage) -> None:
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    await send(storage, *(new(conv, a, str(i), f"第{i}个北京" if i % 2 else f"other {i}") for i in range(10)))
    await index_all(storage)
    page = await storage.search_messages(SearchQuery(user_id=a, terms=["北京"], short_scan=4, limit=10))
    assert [h.message.seq for h in page.hits] == [10, 8]  # seqs 10..7 read: two of them match
    assert not page.complete and page.next_before is not None
    rest = await storage.search_messages(
        SearchQuery(user_id=a, terms=["北京"], short_scan=100, limit=10, before=page.next_before)
    )
    assert [h.message.seq for h in rest.hits] == [6, 4, 2] and rest.complete and rest.next_before is None


async def test_reindex_is_one_call_for_an_edit(storage: SqlStorage) -> None:
    """Edits do not exist yet: an edit will change the body and call reindex_message; until then the stale
    entry never returns the message for its old text."""
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    (seq,) = await send(storage, new(conv, a, "1", "first wording"))
    await index_all(storage)
    async with storage.writer.begin() as conn:
        await conn.execute(
            text("UPDATE messages SET body = :b WHERE conv = :c AND seq = :s"),
            {"b": msgspec.json.encode({"text": "second phrasing"}).decode(), "c": conv, "s": seq},
        )
    assert await find(storage, a, "first") == []  # rechecked against the current text
    assert await find(storage, a, "second") == []  # not indexed yet
    await storage.reindex_message(conv, seq)
    assert await find(storage, a, "phrasing") == ["second phrasing"]
    assert await find(storage, a, "wording") == []


async def test_reindex_beside_another_nodes_indexer(make_storage: MakeStorage) -> None:
    """The cluster's intermittent ``internal`` on ``edit``: the edit's re-index and another node's indexer
    pass both replaced the same entry (delete, then insert), and on PostgreSQL the second insert met the
    first's uncommitted row: a unique violation on ``message_search``. Both must succeed, in either order,
    and the entry must end with the text the message has now."""
    one, two = await make_storage(), await make_storage()
    a, b = await users(one, "ann", "bob")
    conv = pconv(a, b)
    for round_ in range(12):
        (seq,) = await send(one, new(conv, a, f"r{round_}", f"draft{round_} text"))
        async with one.writer.begin() as conn:  # the edit, committed; its re-index is what races
            await conn.execute(
                text("UPDATE messages SET body = :b WHERE conv = :c AND seq = :s"),
                {"b": msgspec.json.encode({"text": f"final{round_} text"}).decode(), "c": conv, "s": seq},
            )
        await asyncio.gather(one.reindex_message(conv, seq), two.index_messages(100))
        assert await find(one, a, f"final{round_}") == [f"final{round_} text"]


async def test_an_edit_is_found_by_its_new_text_at_once_whatever_the_indexer_does(
    make_storage: MakeStorage,
) -> None:
    """An edit re-indexes its message in its own transaction: never stored without it, and never overwritten
    by an indexer pass (on any node) that read the text before the edit."""
    one, two = await make_storage(), await make_storage()
    a, b = await users(one, "ann", "bob")
    conv = pconv(a, b)
    for round_ in range(12):
        (seq,) = await send(one, new(conv, a, f"r{round_}", f"draft{round_} text"))
        body = {"text": f"final{round_} text", "edited": NOW + 1}
        notice = new(conv, a, f"~edit:{round_}", {"seq": seq, **body}, kind="edit")
        change = MessageChange(kind="edit", seq=seq, body=body)
        done, _ = await asyncio.gather(one.apply_action(notice, change), two.index_messages(100))
        assert isinstance(done, ActionResult) and done.stored is not None
        assert await find(one, a, f"final{round_}") == [f"final{round_} text"]
        assert await find(one, a, f"draft{round_}") == []
    await index_all(two)  # a later pass changes nothing
    assert len(await find(one, a, "final")) == 12


async def test_indexer_watermark_and_one_indexer(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    a, b = await users(one, "ann", "bob")
    conv = pconv(a, b)
    await send(one, *(new(conv, a, str(i), f"line {i}") for i in range(7)))
    first = await one.index_messages(3)
    assert first.ran and first.indexed == 3 and first.watermark == first.newest - 4
    # Another node (storage instance) takes over from the stored watermark, re-doing nothing twice.
    second = await two.index_messages(100)
    assert second.indexed == 4 and second.watermark == second.newest
    assert (await one.search_backlog()).watermark == second.newest
    assert len(await find(one, a, "line")) == 7


async def test_indexer_waits_for_a_hole_then_passes_it(
    storage: SqlStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: a rid taken by a send that is still open (or rolled back) leaves a hole; the watermark
    stops below it while the rows above are indexed; once GAP_WAIT_S passes the hole is skipped."""
    if storage.dialect != "postgresql":
        pytest.skip("SQLite rowids are taken at commit by its one writer: no holes")
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    await send(storage, new(conv, a, "1", "before the hole"))
    async with storage.writer.begin() as conn:
        await conn.execute(text("SELECT nextval('messages_rid_seq')"))  # a send that rolled back
    await send(storage, new(conv, a, "2", "after the hole"))
    progress = await storage.index_messages(100)
    assert progress.watermark == progress.newest - 2
    assert len(await find(storage, a, "hole")) == 2  # indexed anyway
    monkeypatch.setattr(sql_search, "GAP_WAIT_S", 0.0)
    progress = await storage.index_messages(100)
    assert progress.watermark == progress.newest


async def test_messages_around(storage: SqlStorage) -> None:
    a, b = await users(storage, "ann", "bob")
    conv = pconv(a, b)
    await send(storage, *(new(conv, a, str(i), f"m{i}") for i in range(20)))
    page, older, newer = await storage.messages_around(conv, 10, 3, 2, 0)
    assert [m.seq for m in page] == [8, 9, 10, 11, 12] and older and newer
    page, older, newer = await storage.messages_around(conv, 2, 5, 30, 0)
    assert [m.seq for m in page][:2] == [1, 2] and not older and not newer
    page, older, newer = await storage.messages_around(conv, 10, 5, 0, 8)  # joined after seq 8
    assert [m.seq for m in page] == [9, 10] and not older and newer


async def two_nodes_and_a_message(make_storage: MakeStorage, body: str) -> tuple[SqlStorage, SqlStorage, int]:
    """PostgreSQL only (SQLite serialises passes through its one writer): two nodes on one database, and one
    unindexed message from ann; the nodes and ann's id."""
    one, two = await make_storage(), await make_storage()
    if one.dialect != "postgresql":
        pytest.skip("SQLite serialises passes through its one writer")
    a, b = await users(one, "ann", "bob")
    await send(one, new(pconv(a, b), a, "1", body))
    return one, two, a


async def test_one_indexer_at_a_time(make_storage: MakeStorage) -> None:
    """PostgreSQL: a pass while another node holds the indexer lock does nothing (SQLite: one writer)."""
    one, two, a = await two_nodes_and_a_message(make_storage, "held back")
    async with one.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": sql_search.INDEXER_LOCK})
        held = await two.index_messages(100)
        assert not held.ran and held.indexed == 0
        await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": sql_search.INDEXER_LOCK})
    assert (await two.index_messages(100)).indexed == 1
    assert await find(one, a, "held") == ["held back"]


async def test_a_pass_that_keeps_finding_the_lock_taken_waits_for_it(make_storage: MakeStorage) -> None:
    """PostgreSQL: edits hold the indexer lock shared; a steady stream of them must not starve the index.
    After MAX_SKIPPED_PASSES turns skipped in a row, the next pass waits for the lock instead of trying."""
    one, two, a = await two_nodes_and_a_message(make_storage, "starved")
    async with one.engine.connect() as conn:
        await conn.execute(text("SELECT pg_advisory_lock_shared(:k)"), {"k": sql_search.INDEXER_LOCK})
        for _ in range(sql_search.MAX_SKIPPED_PASSES):
            assert not (await two.index_messages(100)).ran
        waiting = asyncio.ensure_future(two.index_messages(100))
        await asyncio.sleep(0.3)
        assert not waiting.done()  # waits for the holder, rather than skipping again
        await conn.execute(text("SELECT pg_advisory_unlock_shared(:k)"), {"k": sql_search.INDEXER_LOCK})
        done = await asyncio.wait_for(waiting, 10)
    assert done.ran and done.indexed == 1
    assert await find(one, a, "starved") == ["starved"]
