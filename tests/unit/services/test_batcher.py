"""The send batcher: against a fake storage, one message that breaks its batch fails alone (issue 12.3); on
SQLite, what one transaction does with duplicates and refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.storage.base import NewMessage, Rejected, Stored
from hubbub.engines.storage.sql import SqlStorage
from hubbub.services.batcher import Queued, SendBatcher
from hubbub.services.messages import admit_group_message


class FakeStorage:
    """Stores anything but a message whose cmid starts with "poison", which raises for its whole batch."""

    def __init__(self, fail_with: Exception | None = None) -> None:
        self.fail_with = fail_with
        self.calls: list[list[str]] = []
        self.stored: list[str] = []
        self.seq = 0

    async def store_messages(self, batch: list[NewMessage], admit: Any = None) -> list[Stored | Rejected]:
        self.calls.append([m.cmid for m in batch])
        await asyncio.sleep(0)
        if self.fail_with is not None:
            raise self.fail_with
        if any(m.cmid.startswith("poison") for m in batch):
            raise KeyError("g:7")  # what a non-canonical group id once raised inside a batch
        results: list[Stored | Rejected] = []
        for m in batch:
            self.seq += 1
            self.stored.append(m.cmid)
            message = Message(
                id=str(m.id),
                conv=m.conv,
                seq=self.seq,
                sender=m.sender,
                type=m.type,
                body=m.body,
                ts=m.ts,
                cmid=m.cmid,
            )
            results.append(Stored(message=message, duplicate=False, recipients=m.members))
        return results


def item(cmid: str, sender: int = 1) -> NewMessage:
    return NewMessage(
        id=1, conv="p:1:2", sender=sender, cmid=cmid, type="text", body={"text": cmid}, ts=1, members=(1, 2)
    )


def quiet(loop: asyncio.AbstractEventLoop) -> list[dict[str, Any]]:
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    return reported


async def test_an_unexpected_error_fails_only_the_message_that_causes_it():
    reported = quiet(asyncio.get_running_loop())
    storage = FakeStorage()
    published: list[list[str]] = []

    async def on_stored(batch: list[Queued], results: list[Stored | Rejected]) -> None:
        published.append([q.item.cmid for q in batch])

    batcher = SendBatcher(storage, on_stored)  # type: ignore[arg-type]
    cmids = [f"m{i}" for i in range(50)]
    cmids.insert(20, "poison")
    futures = {cmid: batcher.submit(Queued(item(cmid, sender=2 if cmid == "poison" else 1))) for cmid in cmids}
    await batcher.close()
    results = await asyncio.gather(*futures.values(), return_exceptions=True)
    outcome = dict(zip(futures, results, strict=True))

    poison = outcome.pop("poison")
    assert isinstance(poison, HubbubError) and poison.code is Code.INTERNAL
    assert all(isinstance(r, Message) for r in outcome.values()), outcome
    # Stored in submission order, each once, and published in that order.
    assert storage.stored == [c for c in cmids if c != "poison"]
    assert [c for batch in published for c in batch] == storage.stored
    assert [r.seq for r in outcome.values() if isinstance(r, Message)] == list(range(1, 51))
    assert storage.calls[0] == cmids  # the first try was one batch
    assert any("one by one" in c["message"] for c in reported)


async def test_a_storage_refusal_fails_the_whole_batch_without_retrying():
    """``unavailable`` is about the storage, not a message: retrying each would only hammer it."""
    storage = FakeStorage(fail_with=HubbubError(Code.UNAVAILABLE, "down"))

    async def on_stored(batch: list[Queued], results: list[Stored | Rejected]) -> None:
        raise AssertionError("nothing was stored")

    batcher = SendBatcher(storage, on_stored)  # type: ignore[arg-type]
    futures = [batcher.submit(Queued(item(f"m{i}"))) for i in range(5)]
    await batcher.close()
    for future in futures:
        with pytest.raises(HubbubError) as refused:
            await future
        assert refused.value.code is Code.UNAVAILABLE
    assert len(storage.calls) == 1


# -- on a real SQLite storage -------------------------------------------------------------------------
@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    storage = SqlStorage(f"sqlite+aiosqlite:///{tmp_path / 'hubbub.db'}")
    await storage.start()
    yield storage
    await storage.close()


async def test_one_batch_stores_the_same_cmid_once_and_refuses_a_message_alone(sqlite: SqlStorage) -> None:
    """Queued together (one transaction): a cmid twice is one message, both futures resolve to it, and it is
    published once; a send the group rules refuse fails alone with its own error."""
    owner = (await sqlite.create_user("owner", "o", "h", 1)).id
    outsider = (await sqlite.create_user("outsider", "x", "h", 1)).id
    created = NewMessage(id=100, conv="", sender=owner, cmid="~g", type="system", body={}, ts=1)
    conv = (await sqlite.create_group(owner, {"name": "g"}, [], created)).stored.message.conv
    batches: list[list[Stored | Rejected]] = []

    async def on_stored(batch: list[Queued], results: list[Stored | Rejected]) -> None:
        batches.append(results)

    batcher = SendBatcher(sqlite, on_stored, admit_group_message)

    def to_group(cmid: str, sender: int) -> Queued:
        return Queued(NewMessage(id=hash(cmid) & 0xFFFF, conv=conv, sender=sender, cmid=cmid, type="text",
                                 body={"text": cmid}, ts=2))

    futures = [batcher.submit(to_group(c, s)) for c, s in [("a", owner), ("x", outsider), ("a", owner),
                                                           ("b", owner)]]
    await batcher.close()
    a1, refused, a2, b = await asyncio.gather(*futures, return_exceptions=True)
    assert isinstance(a1, Message) and a1 == a2 and isinstance(b, Message) and (a1.seq, b.seq) == (2, 3)
    assert isinstance(refused, HubbubError) and refused.code is Code.FORBIDDEN
    (results,) = batches
    assert [type(r).__name__ for r in results] == ["Stored", "Rejected", "Stored", "Stored"]
    assert [r.duplicate for r in results if isinstance(r, Stored)] == [False, True, False]
