"""Group concurrent sends into one storing transaction.

Sends queue up while a transaction is in flight; the next transaction takes all of them (up to
``max_batch``). At low load a batch is one message and adds no delay; under load the cost per message falls,
which is where the throughput comes from (docs/architecture.md, "Send path").

Order: submissions are stored in the order they were submitted, and ``on_stored`` is called once per batch,
in order, before any submitter is woken, so pushes leave in seq order.
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
                except Exception as exc:  # a bug or an unexpected driver error: fail loudly, store nothing
                    _fail(batch, HubbubError(Code.INTERNAL, "message could not be stored"))
                    asyncio.get_running_loop().call_exception_handler(
                        {"message": "store_messages failed", "exception": exc}
                    )
                    continue
                self.batches += 1
                self.messages += len(items)
                for item in items:
                    self.by_type[item.type] += 1
                if self.on_batch is not None:
                    self.on_batch(len(items))
                try:
                    await self.on_stored(items, results)
                except Exception as exc:  # pushes are best effort; the messages are stored, acks must go out
                    asyncio.get_running_loop().call_exception_handler(
                        {"message": "publishing stored messages failed", "exception": exc}
                    )
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, Rejected):
                        future.set_exception(result.error)
                    else:
                        future.set_result(result)
        finally:
            self._flusher = None

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)


def _fail(batch: list[tuple[NewMessage, asyncio.Future[Stored]]], exc: HubbubError) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)
