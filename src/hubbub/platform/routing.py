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

from hubbub.core.errors import Code, HubbubError
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
        raw = self.request.match_info[name]
        if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:  # "²".isdigit() is True
            raise HubbubError(Code.INVALID_FIELD, f"{name}: must be a positive integer")
        return int(raw)

    def query_int(self, name: str, default: int | None, low: int = 0, high: int = 2**53) -> int | None:
        raw = self.request.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError as exc:
            raise HubbubError(Code.INVALID_FIELD, f"{name}: must be an integer") from exc
        if not low <= value <= high:
            raise HubbubError(Code.INVALID_FIELD, f"{name}: must be between {low} and {high}")
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


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HubbubError(Code.UNAUTHORIZED, "missing bearer token")
    return token.strip()
