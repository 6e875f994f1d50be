"""Logging: structlog rendering for every logger, JSON when not on a terminal, readable when on one.

Code logs through the standard library with a short event name and its fields in ``extra``
(``log.info("ws_closed", extra={"user": 7, "code": 4503})``); every line also carries the level, the logger,
an ISO timestamp and the node id. What is never logged: passwords, tokens, secrets, message bodies
(docs/operations.md, "Logs").
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog

from hubbub.config import LOG_LEVELS, ConfigError

LEVELS = LOG_LEVELS


def _with_node(node_id: str) -> Any:
    def add_node(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
        event.setdefault("node", node_id)
        return event

    return add_node


def setup(
    level: str = "info", node_id: str = "", *, json: bool | None = None, stream: TextIO | None = None
) -> None:
    """Route every logger through one handler on ``stream`` (stderr). ``json`` defaults to "stderr is not a
    terminal"."""
    if level.lower() not in LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(LEVELS)}, not {level!r}")
    as_json = not sys.stderr.isatty() if json is None else json
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    pre_chain: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.format_exc_info,
    ]
    if node_id:
        pre_chain.append(_with_node(node_id))
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        foreign_pre_chain=pre_chain,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiohttp.access", "alembic", "websockets"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
