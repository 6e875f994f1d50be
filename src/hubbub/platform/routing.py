"""Route declarations that validate requests and describe themselves for OpenAPI.

A route names its body type (a msgspec Struct): the body is decoded and validated into it before the
handler runs, and the same type produces the OpenAPI schema, so the docs cannot drift from the checks.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
from aiohttp import web

from hubbub.core.convs import validate
from hubbub.core.errors import Code, HubbubError, invalid_id
from hubbub.core.ids import MAX_SEQ, parse_id, parse_number, parse_seq
from hubbub.services.auth import Principal
from hubbub.services.container import Services

Handler = Callable[..., Awaitable[Any]]


@dataclass
class Route:
    method: str
    path: str
    handler: Handler
    summary: str
    body: type[msgspec.Struct] | None = None
    response: Any = None
    status: int = 200
    auth: bool = True
    query: dict[str, str] = field(default_factory=dict)
    tag: str = ""


ROUTES: list[Route] = []


def route(
    method: str,
    path: str,
    *,
    summary: str,
    body: type[msgspec.Struct] | None = None,
    response: Any = None,
    status: int = 200,
    auth: bool = True,
    query: dict[str, str] | None = None,
    tag: str = "",
) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, path, handler, summary, body, response, status, auth, query or {}, tag))
        return handler

    return register


class Ctx:
    """What a handler gets: the services, the caller (if authenticated), the request and its parsed body."""

    __slots__ = ("body", "principal", "request", "s")

    def __init__(self, s: Services, request: web.Request, principal: Principal | None, body: Any) -> None:
        self.s = s
        self.request = request
        self.principal = principal
        self.body = body

    @property
    def me(self) -> int:
        assert self.principal is not None
        return self.principal.user_id

    def path_int(self, name: str) -> int:
        """A user, group or request id (a seq when the parameter is ``seq``) from the path, spelled
        canonically (core/ids.py); anything else is ``invalid_id``, so "007", "+7" or "７" never reach a
        service."""
        return _path_number(name, self.request.match_info[name])

    def path_conv(self, name: str = "conv") -> str:
        """A conversation id from the path, in its canonical form (``invalid_id`` otherwise)."""
        return validate(self.request.match_info[name], name)

    def query_seq(self, name: str, high: int = MAX_SEQ) -> int | None:
        """A seq or an id cursor from the query (0 to ``high``, canonical), None when absent."""
        raw = self.request.query.get(name)
        if raw is None or raw == "":
            return None
        value = parse_seq(raw, high)
        if value is None:
            raise invalid_id(name, f"a number from 0 to {high}")
        return value

    def query_int(self, name: str, default: int | None, low: int = 0, high: int = 2**53) -> int | None:
        """A count (a page size) from the query; ``invalid_field`` unless a number from low to high."""
        raw = self.request.query.get(name)
        if raw is None or raw == "":
            return default
        value = parse_number(raw, high)
        if value is None or value < low:
            raise HubbubError(Code.INVALID_FIELD, f"{name}: must be an integer from {low} to {high}")
        return value


#: Path parameters that are not numbers: each route checks its own (content hashes, export ids past 2^31,
#: invite and link codes), answering ``not_found`` for one it does not know.
OPAQUE_PATH_KEYS = frozenset({"upload_id", "export_id", "code", "session_id"})


def ids_in_path(request: web.Request) -> None:
    """Refuse a request whose path holds an id that is not canonical (``invalid_id``), before its body is
    read, so a bad id is reported as such whatever else is wrong with the request."""
    for name, raw in request.match_info.items():
        if name == "conv":
            validate(raw, name)
        elif name not in OPAQUE_PATH_KEYS:
            _path_number(name, raw)


def _path_number(name: str, raw: str) -> int:
    value = parse_seq(raw) if name == "seq" else parse_id(raw)
    if value is None:
        raise invalid_id(name, "a seq" if name == "seq" else "an id")
    return value


async def decode_body(request: web.Request, body_type: type[msgspec.Struct]) -> Any:
    raw = await request.read()
    try:
        return msgspec.json.decode(raw or b"{}", type=body_type)
    except msgspec.ValidationError as exc:
        message = str(exc)
        not_an_object = message.startswith("Expected `object`") and "- at `$" not in message
        code = Code.BAD_REQUEST if not_an_object else Code.INVALID_FIELD
        raise HubbubError(code, message) from exc
    except msgspec.DecodeError as exc:
        raise HubbubError(Code.BAD_REQUEST, f"malformed JSON: {exc}") from exc
