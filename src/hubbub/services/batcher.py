"""Group concurrent sends into one storing transaction.

Sends queue up while a transaction is in flight; the next transaction takes all of them (up to
``max_batch``). At low load a batch is one message and adds no delay; under load the cost per message falls,
which is where the throughput comes from (docs/architecture.md, "Send path").

Order: submissions are stored in the order they were submitted, and ``on_stored`` is called once per batch,
in order, before any submitter is woken, so pushes leave in seq order.

Isolation: one sender's message must never fail another's. A batch whose transaction raises something
unexpected (a bug, a driver error tied to one row) is stored again one message at a time, in order, so only
the message that raises again fails. A :class:`HubbubError` (storage unavailable) is about the storage, not
a message: the whole batch fails with it, nothing stored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from hubbub.core.errors import Code, HubbubError
from hubbub.engines.storage.base import Admit, NewMessage, Rejected, Storage, Stored

OnStored = Callable[[list[NewMessage], list[Stored | Rejected]], Awaitable[None]]


class SendBatcher:
    def __init__(
        self, storage: Storage, on_stored: OnStored, admit: Admit | None = None, max_batch: int = 512
    ) -> None:
        self.storage = storage
        self.admit = admit
        self.on_stored = on_stored
        self.max_batch = max_batch
        self._pending: list[tuple[NewMessage, asyncio.Future[Stored]]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: For metrics and benchmarks: transactions, messages stored by type, and a per-batch hook.
        self.batches = 0
        self.messages = 0
        self.by_type: Counter[str] = Counter()
        self.on_batch: Callable[[int], None] | None = None

    def submit(self, item: NewMessage) -> asyncio.Future[Stored]:
        """Queue a message for storing; the future resolves once it is stored (or fails: nothing stored)."""
        future: asyncio.Future[Stored] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                items = [item for item, _ in batch]
                try:
                    results = await self.storage.store_messages(items, self.admit)
                except HubbubError as exc:
                    _fail(batch, exc)
                    continue
                except Exception as exc:  # a bug or a driver error: isolate it, and report it
                    _report("store_messages failed; storing its messages one by one", exc)
                    batch, results = await self._one_by_one(batch)
                    if not batch:
                        continue
                    items = [item for item, _ in batch]
                await self._stored(batch, items, results)
        finally:
            self._flusher = None

    async def _one_by_one(
        self, batch: list[tuple[NewMessage, asyncio.Future[Stored]]]
    ) -> tuple[list[tuple[NewMessage, asyncio.Future[Stored]]], list[Stored | Rejected]]:
        """Store each message of a failed batch in its own transaction; fail only those that fail alone.
        Returns the messages that have a result (stored, duplicate or rejected) with their results."""
        kept: list[tuple[NewMessage, asyncio.Future[Stored]]] = []
        results: list[Stored | Rejected] = []
        for item, future in batch:
            try:
                result = (await self.storage.store_messages([item], self.admit))[0]
            except HubbubError as exc:
                _fail([(item, future)], exc)
                continue
            except Exception as exc:  # this message alone fails
                _report(f"message {item.sender}/{item.cmid!r} could not be stored", exc)
                _fail([(item, future)], HubbubError(Code.INTERNAL, "message could not be stored"))
                continue
            kept.append((item, future))
            results.append(result)
        return kept, results

    async def _stored(
        self,
        batch: list[tuple[NewMessage, asyncio.Future[Stored]]],
        items: list[NewMessage],
        results: list[Stored | Rejected],
    ) -> None:
        self.batches += 1
        self.messages += len(items)
        for item in items:
            self.by_type[item.type] += 1
        if self.on_batch is not None:
            self.on_batch(len(items))
        try:
            await self.on_stored(items, results)
        except Exception as exc:  # pushes are best effort; the messages are stored, acks must go out
            _report("publishing stored messages failed", exc)
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, Rejected):
                future.set_exception(result.error)
            else:
                future.set_result(result)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)


def _fail(batch: list[tuple[NewMessage, asyncio.Future[Stored]]], exc: HubbubError) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _report(message: str, exc: BaseException) -> None:
    asyncio.get_running_loop().call_exception_handler({"message": message, "exception": exc})
