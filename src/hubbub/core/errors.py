"""The one error type clients ever see, with stable machine-readable codes.

Services raise :class:`HubbubError`; the platform maps it to an HTTP status and body, the gateway to an
``error`` frame. Anything else escaping a handler is a bug and becomes ``internal``. As Synapse puts it: if an
error does not make sense to present to a client, it should not be a HubbubError.

Docs: docs/protocol.md, "Error codes".
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Code(StrEnum):
    BAD_REQUEST = "bad_request"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    INVALID_FIELD = "invalid_field"
    INVALID_ID = "invalid_id"
    UNKNOWN_TYPE = "unknown_type"
    TOO_LARGE = "too_large"
    UNAUTHORIZED = "unauthorized"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_REVOKED = "token_revoked"
    FORBIDDEN = "forbidden"
    NOT_FRIENDS = "not_friends"
    NOT_FOUND = "not_found"
    USERNAME_TAKEN = "username_taken"
    WEAK_PASSWORD = "weak_password"
    CONFLICT = "conflict"
    RECALL_EXPIRED = "recall_expired"
    MUTED = "muted"
    GROUP_DISMISSED = "group_dismissed"
    GROUP_FROZEN = "group_frozen"
    CONTENT_REJECTED = "content_rejected"
    RATE_LIMITED = "rate_limited"
    #: The callee (or the caller) is already in a call (docs/protocol.md, "Calls").
    BUSY = "busy"
    TIMEOUT = "timeout"
    UNSUPPORTED_MEDIA = "unsupported_media"
    BAD_MEDIA = "bad_media"
    QUOTA_EXCEEDED = "quota_exceeded"
    EXPIRED = "expired"
    NOT_AUTHENTICATED = "not_authenticated"
    UNAVAILABLE = "unavailable"
    #: Registration is closed (admins create accounts), or needs an invite that was not given.
    REGISTRATION_CLOSED = "registration_closed"
    INVITE_REQUIRED = "invite_required"
    #: An invite or join link that cannot be used; ``reason``: unknown, revoked, expired or used_up.
    INVITE_INVALID = "invite_invalid"
    LINK_INVALID = "link_invalid"
    INTERNAL = "internal"
    #: Message actions (docs/protocol.md, "Message actions").
    REPLY_INVALID = "reply_invalid"
    NOT_EDITABLE = "not_editable"
    EDIT_EXPIRED = "edit_expired"
    REACTION_INVALID = "reaction_invalid"
    REACTION_LIMIT = "reaction_limit"


HTTP_STATUS: dict[Code, int] = {
    Code.BAD_REQUEST: 400,
    Code.METHOD_NOT_ALLOWED: 405,
    Code.INVALID_FIELD: 422,
    Code.INVALID_ID: 400,
    Code.UNKNOWN_TYPE: 400,
    Code.TOO_LARGE: 413,
    Code.UNAUTHORIZED: 401,
    Code.TOKEN_EXPIRED: 401,
    Code.TOKEN_REVOKED: 401,
    Code.FORBIDDEN: 403,
    Code.NOT_FRIENDS: 403,
    Code.NOT_FOUND: 404,
    Code.USERNAME_TAKEN: 409,
    Code.WEAK_PASSWORD: 422,
    Code.CONFLICT: 409,
    Code.RECALL_EXPIRED: 409,
    Code.MUTED: 403,
    Code.GROUP_DISMISSED: 410,
    Code.GROUP_FROZEN: 403,
    Code.CONTENT_REJECTED: 422,
    Code.RATE_LIMITED: 429,
    Code.BUSY: 409,
    Code.TIMEOUT: 408,
    Code.UNSUPPORTED_MEDIA: 415,
    Code.BAD_MEDIA: 422,
    Code.QUOTA_EXCEEDED: 413,
    Code.EXPIRED: 410,
    Code.NOT_AUTHENTICATED: 401,
    Code.UNAVAILABLE: 503,
    Code.REGISTRATION_CLOSED: 403,
    Code.INVITE_REQUIRED: 403,
    Code.INVITE_INVALID: 403,
    Code.LINK_INVALID: 403,
    Code.INTERNAL: 500,
    Code.REPLY_INVALID: 422,
    Code.NOT_EDITABLE: 422,
    Code.EDIT_EXPIRED: 409,
    Code.REACTION_INVALID: 422,
    Code.REACTION_LIMIT: 409,
}


class HubbubError(Exception):
    """A refusal the client can act on. ``extra`` fields are merged into the error object."""

    def __init__(self, code: Code, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.extra = extra

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message, **self.extra}

    def __repr__(self) -> str:
        return f"HubbubError({self.code.value!r}, {self.message!r})"


def not_found(what: str) -> HubbubError:
    return HubbubError(Code.NOT_FOUND, f"{what} not found")


def invalid(field: str, why: str) -> HubbubError:
    return HubbubError(Code.INVALID_FIELD, f"{field}: {why}")


def invalid_id(field: str, what: str) -> HubbubError:
    """``field`` does not spell ``what`` canonically (core/ids.py): the same code on REST and WebSocket."""
    return HubbubError(Code.INVALID_ID, f"{field}: not {what} in canonical form (docs/protocol.md, Ids)")
