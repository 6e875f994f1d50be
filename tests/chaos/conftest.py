"""The chaos run's figures go to the terminal summary, so they are in the CI log whatever ``-s``/``-q`` say."""

from __future__ import annotations

from typing import Any

import pytest

FIGURES = pytest.StashKey[list[tuple[str, dict[str, Any]]]]()


@pytest.fixture
def report_figures(request: pytest.FixtureRequest) -> Any:
    """``report_figures(title, figures)``: shown in the terminal summary at the end of the run."""
    shown = request.config.stash.setdefault(FIGURES, [])

    def add(title: str, figures: dict[str, Any]) -> None:
        shown.append((title, figures))

    return add


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    for title, figures in config.stash.get(FIGURES, []):
        terminalreporter.write_sep("=", title)
        for key, value in figures.items():
            terminalreporter.write_line(f"{key:>22}: {value}")
