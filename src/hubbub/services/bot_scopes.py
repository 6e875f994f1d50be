"""What a bot token may call, by scope (docs/integrations.md, "Scopes"): one table for REST and WebSocket.

Anything not listed is refused to every bot token with ``forbidden`` — the admin routes, account and password
routes, invites, exports, group creation and administration, calls. A bot reads only conversations it is a
member of: the services check that for every caller, bots included.
"""

from __future__ import annotations

from hubbub.core.errors import Code, HubbubError
from hubbub.protocol import frames

#: (method, route path) -> the scope it needs.
ROUTE_SCOPES: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/messages"): "send",
    ("POST", "/api/v1/conversations/{conv}/messages/{seq}/recall"): "send",
    ("POST", "/api/v1/uploads"): "send",
    ("GET", "/api/v1/conversations"): "read",
    ("GET", "/api/v1/conversations/{conv}/messages"): "read",
    ("GET", "/api/v1/conversations/{conv}/messages/{seq}/around"): "read",
    ("POST", "/api/v1/conversations/{conv}/read"): "read",
    ("GET", "/api/v1/groups"): "read",
    ("GET", "/api/v1/groups/{group_id}"): "read",
    ("GET", "/api/v1/groups/{group_id}/members"): "read",
    ("GET", "/api/v1/friends"): "read",
    ("GET", "/api/v1/users/{user_id}"): "read",
    ("GET", "/api/v1/me"): "profile",
    ("PATCH", "/api/v1/me"): "profile",
    ("POST", "/api/v1/friends/requests"): "profile",
    ("GET", "/api/v1/friends/requests"): "profile",
    ("POST", "/api/v1/friends/requests/{request_id}/accept"): "profile",
    ("POST", "/api/v1/friends/requests/{request_id}/decline"): "profile",
}

#: WebSocket frames: a bot's socket needs ``read`` to open (it is pushed the bot's conversations).
FRAME_SCOPES: dict[type[frames.ClientFrame], str] = {
    frames.Send: "send",
    frames.Recall: "send",
    frames.Sync: "read",
    frames.Pull: "read",
    frames.History: "read",
    frames.Read: "read",
    frames.Receipts: "read",
}
#: Frames any authenticated socket sends as part of staying connected.
_ALWAYS = (frames.Ping,)


def _refuse(what: str, scope: str | None) -> HubbubError:
    if scope is None:
        return HubbubError(Code.FORBIDDEN, f"bot tokens cannot use {what}")
    return HubbubError(Code.FORBIDDEN, f"this bot token lacks the {scope!r} scope")


def check_route(scopes: tuple[str, ...] | None, method: str, path: str) -> None:
    """Raise ``forbidden`` if a bot token with ``scopes`` may not call the route (None: a user, may)."""
    if scopes is None:
        return
    scope = ROUTE_SCOPES.get((method, path))
    if scope is None or scope not in scopes:
        raise _refuse(f"{method} {path}", scope)


def check_frame(scopes: tuple[str, ...] | None, frame: frames.ClientFrame) -> None:
    if scopes is None or isinstance(frame, _ALWAYS):
        return
    scope = FRAME_SCOPES.get(type(frame))
    if scope is None or scope not in scopes:
        raise _refuse(f"the {type(frame).__name__} frame", scope)


def check_socket(scopes: tuple[str, ...] | None) -> None:
    if scopes is not None and "read" not in scopes:
        raise HubbubError(Code.FORBIDDEN, "a bot's WebSocket needs a token with the 'read' scope")
