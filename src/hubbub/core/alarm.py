"""``Alarm``: how a worker that waits for work sleeps between rounds (the webhook dispatcher, the Web Push sender).

``Periodic`` runs work on a clock; these workers run when there is work, and three things end their sleep,
whichever comes first:

- ``ring()``: this node made work (stored a message with a webhook, queued a push): at once;
- ``at(ms)``: a time this node's own work made something due (a retry, a push window): just after it;
- ``poll_s``: the safety net for work other nodes made and could not tell this node of (one that died).

``wait()`` says which. Setting a time while the worker sleeps shortens the sleep without waking it early.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

from hubbub.core.clock import now_ms

#: Wake this long after a due time, so the work finds it due rather than a millisecond early.
SLACK_S = 0.005


class Woke(enum.Enum):
    RUNG = "rung"
    DUE = "due"
    POLL = "poll"


class Alarm:
    def __init__(self, poll_s: float, clock_ms: Callable[[], int] = now_ms) -> None:
        self.poll_s = poll_s
        self._clock = clock_ms
        self._event = asyncio.Event()
        self._rung = False
        #: The earliest time set since the last DUE wake (None: none).
        self.due_ms: int | None = None

    def ring(self) -> None:
        self._rung = True
        self._event.set()

    def at(self, when_ms: int) -> None:
        """Wake at ``when_ms`` at the latest (the earliest time set wins)."""
        if self.due_ms is None or when_ms < self.due_ms:
            self.due_ms = when_ms
            self._event.set()  # a sleep under way recomputes its timeout

    async def wait(self) -> Woke:
        poll_until = asyncio.get_running_loop().time() + self.poll_s
        while True:
            if self._rung:
                self._rung = False
                self._event.clear()
                return Woke.RUNG
            now = self._clock()
            if self.due_ms is not None and self.due_ms <= now:
                self.due_ms = None
                return Woke.DUE
            timeout = poll_until - asyncio.get_running_loop().time()
            if timeout <= 0:
                return Woke.POLL
            if self.due_ms is not None:
                timeout = min(timeout, (self.due_ms - now) / 1000 + SLACK_S)
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                pass
