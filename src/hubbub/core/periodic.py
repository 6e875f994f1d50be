"""``Periodic``: the one way a node runs work every few seconds (issue 13.7).

A node has several of these: the gateway's heartbeat sweeper, the load report, the registry's renewal, the
liveness renewal, the Redis health probe (which also reads the queue lag), the word list refresh, the blob
collector, the retention purge. Each used to be a hand-written ``while True: sleep; try: ... except`` loop with its own idea of
what an error does. Here, once:

- **Fixed rate**: a run starts every ``interval_s`` (the time the work took is subtracted from the wait), so a
  probe every 0.25 s stays every 0.25 s. A run that takes longer than the interval is followed by the next at
  once; runs never overlap.
- **Jitter**: each wait is stretched or shrunk by up to ``jitter`` (a fraction, default 0) at random, so the
  nodes of a cluster started together do not all renew in the same instant. The mean interval is unchanged.
  Leave it at 0 where a documented bound depends on the exact interval (the health probe).
- **Errors never stop the loop**: an exception of a type in ``quiet`` (an outage the caller expects, such as
  Redis unreachable) is logged as one warning line; any other is logged with its traceback. The next run
  comes at its time either way.
- **Clean stop**: ``stop()`` cancels the task and waits for it, so nothing runs after it returns.

Not for loops that block on a source (a queue consumer): those are not periodic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: ``stop`` cancels up to this many times, waiting this long after each.
_STOP_ATTEMPTS = 3
_STOP_WAIT_S = 1.0


class Periodic:
    def __init__(
        self,
        name: str,
        interval_s: float,
        work: Callable[[], Awaitable[object]],
        *,
        jitter: float = 0.0,
        quiet: tuple[type[BaseException], ...] = (),
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"{name}: the interval must be positive, not {interval_s}")
        if not 0 <= jitter < 1:
            raise ValueError(f"{name}: jitter is a fraction in [0, 1), not {jitter}")
        self.name = name
        self.interval_s = interval_s
        self.work = work
        self.jitter = jitter
        self.quiet = quiet
        #: Runs finished (with or without an error) and runs that raised, for tests and figures.
        self.runs = 0
        self.failures = 0
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Run ``work`` one interval from now, then every interval, until ``stop``. Starting twice is a no-op."""
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.get_running_loop().create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        """Cancel the loop and wait until it has ended (a run in progress is cancelled where it waits).

        Bounded: a library that swallows a cancellation (redis-py may, mid-reply) cannot hold this up; the
        loop also checks a flag, so it ends at its next wait at the latest."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        for _ in range(_STOP_ATTEMPTS):
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=_STOP_WAIT_S)
            if done:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    task.result()
                return
        log.warning(
            "%s did not stop within %.0f s; it ends at its next wait",
            self.name,
            _STOP_ATTEMPTS * _STOP_WAIT_S,
        )

    def _wait(self, took: float) -> float:
        interval = self.interval_s
        if self.jitter:
            interval *= 1 + random.uniform(-self.jitter, self.jitter)
        return max(0.0, interval - took)

    async def _loop(self) -> None:
        took = 0.0
        while not self._stopping:
            await asyncio.sleep(self._wait(took))
            if self._stopping:
                return
            started = time.monotonic()
            try:
                await self.work()
            except asyncio.CancelledError:
                raise
            except self.quiet as exc:
                self.failures += 1
                log.warning("%s failed: %s", self.name, exc or type(exc).__name__)
            except Exception:
                self.failures += 1
                log.exception("%s failed; retrying at the next interval", self.name)
            self.runs += 1
            took = time.monotonic() - started
