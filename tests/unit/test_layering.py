"""The import rules of docs/architecture.md ("Layout"): each package imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "hubbub"

#: package -> the Hubbub modules and packages it may import (besides itself).
ALLOWED = {
    "core": set(),
    "protocol": {"core"},
    "engines": {"core", "protocol", "migrations"},
    # ``proof``: the per-message tracer (proof/trace.py), a hook on the send and delivery paths that sits
    # beside the engines (it reads their types); the canary (a client of the server) is only run by the CLI.
    "proof": {"core", "engines", "config", "client"},
    "services": {"core", "protocol", "engines", "config", "proof"},
    "gateway": {"core", "protocol", "engines", "services", "config", "metrics", "proof"},
    "platform": {"core", "protocol", "engines", "services", "config", "metrics", "gateway", "proof"},
    "client": {"protocol"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("hubbub."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("hubbub."))
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down(package: str) -> None:
    wrong = {
        f"{path.relative_to(SRC)} imports hubbub.{name}"
        for path in (SRC / package).rglob("*.py")
        for name in _imports(path) - ALLOWED[package] - {package}
    }
    assert not wrong, sorted(wrong)
