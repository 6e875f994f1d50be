"""The unit tests run with asyncio's debug mode on (issue 13.8), where it is cheap.

Debug mode reports coroutines never awaited (with where they were made), loop calls from the wrong thread
(an error), unclosed transports and callbacks that hold the loop longer than ``SLOW_CALLBACK_S``. Over the
socket suites it costs more than twice the CPU time (asyncio extracts a stack for every task, future and
callback), so there it is asked for: ``pytest --asyncio-debug tests/e2e`` (docs/architecture.md, "Tests").
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator

import pytest

#: A callback that holds the loop this long is logged. asyncio's default, 0.1 s, is passed on this shared
#: two-core machine by ordinary work under load; half a second is a real stall (a synchronous call on the loop).
SLOW_CALLBACK_S = 0.5


@pytest.fixture(autouse=True)
def asyncio_debug(request: pytest.FixtureRequest) -> None:
    """Only for coroutine tests: a plain test has no loop, and giving it one would cost more than it runs."""
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue("debug_loop")


@pytest.fixture
async def debug_loop() -> AsyncIterator[asyncio.AbstractEventLoop]:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    loop.slow_callback_duration = SLOW_CALLBACK_S
    yield loop


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A coroutine never awaited fails the unit test that made it (it is only a warning, raised in ``__del__``,
    so it arrives as an unraisable exception)."""
    for item in items:
        if "tests/unit/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.filterwarnings("error:coroutine .* was never awaited:RuntimeWarning"))
            item.add_marker(pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"))
