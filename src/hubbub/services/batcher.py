"""Group concurrent sends into one storing transaction.

Sends queue up while a transaction is in flight; the next transaction takes all of them (up to
``max_batch``). At low load a batch is one message and adds no delay; under load the cost per message falls,
which is where the throughput comes from (docs/architecture.md, "Send path").

Order: submissions are stored in the order they were submitted, and ``on_stored`` is called once per batch,
in order, before any submitter is woken, so pushes leave in seq order (and an ack never overtakes the push
of an earlier message).

What is queued is a :class:`Queued`: the message and the connection it came from (its ``origin``, which is
not pushed its own message), so everything about one send travels together until it is published.

Isolation: one sender's message must never fail another's. A batch whose transaction raises something
unexpected (a bug, a driver error tied to one row) is stored again one message at a time, in order, so only
the message that raises again fails. A :class:`HubbubError` (storage unavailable) is about the storage, not
a message: the whole batch fails with it, nothing stored.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Container

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Message
from hubbub.engines.storage.base import Admit, NewMessage, Rejected, Storage, Stored


class Queued:
    """A message waiting for its storing transaction. ``done`` resolves to the stored message (a resend: the
    first one), or fails with the error its sender should see; nothing was stored then."""

    __slots__ = ("done", "item", "origin")

    def __init__(self, item: NewMessage, origin: str | None = None) -> None:
        self.item = item
        #: The connection that sent it (None: REST, or the server itself).
        self.origin = origin
        self.done: asyncio.Future[Message] = asyncio.get_running_loop().create_future()


#: Called with each stored batch and its results (in order), before any submitter is woken.
OnStored = Callable[[list[Queued], list[Stored | Rejected]], Awaitable[None]]


class SendBatcher:
    def __init__(
        self, storage: Storage, on_stored: OnStored, admit: Admit | None = None, max_batch: int = 512
    ) -> None:
        self.storage = storage
        self.admit = admit
        self.on_stored = on_stored
        self.max_batch = max_batch
        self._pending: list[Queued] = []
        self._flusher: asyncio.Task[None] | None = None
        #: For metrics and benchmarks: transactions, messages stored by type, and a per-batch hook.
        self.batches = 0
        self.messages = 0
        self.by_type: Counter[str] = Counter()
        #: Senders left out of ``by_type``: the delivery canary's accounts (services/canaries.py).
        self.unmetered: Container[int] = ()
        self.on_batch: Callable[[int], None] | None = None

    def submit(self, queued: Queued) -> asyncio.Future[Message]:
        """Queue a message for storing; returns ``queued.done``. Synchronous: submissions keep their order."""
        self._pending.append(queued)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return queued.done

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch = self._pending[: self.max_batch]
                del self._pending[: self.max_batch]
                items = [q.item for q in batch]
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
                await self._stored(batch, results)
        finally:
            self._flusher = None

    async def _one_by_one(self, batch: list[Queued]) -> tuple[list[Queued], list[Stored | Rejected]]:
        """Store each message of a failed batch in its own transaction; fail only those that fail alone.
        Returns the messages that have a result (stored, duplicate or rejected) with their results."""
        kept: list[Queued] = []
        results: list[Stored | Rejected] = []
        for queued in batch:
            item = queued.item
            try:
                result = (await self.storage.store_messages([item], self.admit))[0]
            except HubbubError as exc:
                _fail([queued], exc)
                continue
            except Exception as exc:  # this message alone fails
                _report(f"message {item.sender}/{item.cmid!r} could not be stored", exc)
                _fail([queued], HubbubError(Code.INTERNAL, "message could not be stored"))
                continue
            kept.append(queued)
            results.append(result)
        return kept, results

    async def _stored(self, batch: list[Queued], results: list[Stored | Rejected]) -> None:
        self.batches += 1
        self.messages += len(batch)
        unmetered = self.unmetered
        for queued in batch:
            if queued.item.sender not in unmetered:
                self.by_type[queued.item.type] += 1
        if self.on_batch is not None:
            self.on_batch(len(batch))
        try:
            await self.on_stored(batch, results)
        except Exception as exc:  # pushes are best effort; the messages are stored, acks must go out
            _report("publishing stored messages failed", exc)
        for queued, result in zip(batch, results, strict=True):
            if queued.done.done():
                continue
            if isinstance(result, Rejected):
                queued.done.set_exception(result.error)
            else:
                queued.done.set_result(result.message)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.shield(self._flusher)


def _fail(batch: list[Queued], exc: HubbubError) -> None:
    for queued in batch:
        if not queued.done.done():
            queued.done.set_exception(exc)


def _report(message: str, exc: BaseException) -> None:
    asyncio.get_running_loop().call_exception_handler({"message": message, "exception": exc})
