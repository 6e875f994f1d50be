"""The send batcher against a fake storage: one message that breaks its batch fails alone (issue 12.3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.storage.base import NewMessage, Rejected, Stored
from hubbub.services.batcher import SendBatcher


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

    async def on_stored(items: list[NewMessage], results: list[Stored | Rejected]) -> None:
        published.append([m.cmid for m in items])

    batcher = SendBatcher(storage, on_stored)  # type: ignore[arg-type]
    cmids = [f"m{i}" for i in range(50)]
    cmids.insert(20, "poison")
    futures = {cmid: batcher.submit(item(cmid, sender=2 if cmid == "poison" else 1)) for cmid in cmids}
    await batcher.close()
    results = await asyncio.gather(*futures.values(), return_exceptions=True)
    outcome = dict(zip(futures, results, strict=True))

    poison = outcome.pop("poison")
    assert isinstance(poison, HubbubError) and poison.code is Code.INTERNAL
    assert all(isinstance(r, Stored) for r in outcome.values()), outcome
    # Stored in submission order, each once, and published in that order.
    assert storage.stored == [c for c in cmids if c != "poison"]
    assert [c for batch in published for c in batch] == storage.stored
    assert [r.message.seq for r in outcome.values() if isinstance(r, Stored)] == list(range(1, 51))
    assert storage.calls[0] == cmids  # the first try was one batch
    assert any("one by one" in c["message"] for c in reported)


async def test_a_storage_refusal_fails_the_whole_batch_without_retrying():
    """``unavailable`` is about the storage, not a message: retrying each would only hammer it."""
    storage = FakeStorage(fail_with=HubbubError(Code.UNAVAILABLE, "down"))

    async def on_stored(items: list[NewMessage], results: list[Stored | Rejected]) -> None:
        raise AssertionError("nothing was stored")

    batcher = SendBatcher(storage, on_stored)  # type: ignore[arg-type]
    futures = [batcher.submit(item(f"m{i}")) for i in range(5)]
    await batcher.close()
    for future in futures:
        with pytest.raises(HubbubError) as refused:
            await future
        assert refused.value.code is Code.UNAVAILABLE
    assert len(storage.calls) == 1
