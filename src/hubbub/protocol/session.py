"""Per-connection protocol state, without I/O: what a frame means given what came before.

The gateway feeds raw frame text in and gets back either a decoded request to run or an error frame (and
perhaps a close code) to send. Tested by feeding strings (tests/unit/protocol/test_session.py).
"""

from __future__ import annotations

import enum

import msgspec

from hubbub.core.errors import Code, HubbubError
from hubbub.protocol import frames
from hubbub.protocol.close_codes import Close

_decoder = msgspec.json.Decoder(frames.AnyClientFrame)

# A client that keeps sending garbage is broken or hostile; after this many bad frames in a row it is cut.
MAX_CONSECUTIVE_ERRORS = 20


class State(enum.Enum):
    AWAITING_AUTH = "awaiting_auth"
    AUTHENTICATING = "authenticating"
    READY = "ready"
    CLOSED = "closed"


class Rejection(msgspec.Struct):
    """What to tell the client instead of running a frame; ``close`` ends the connection after it."""

    error: frames.ErrorFrame
    close: Close | None = None


class Session:
    __slots__ = ("errors_in_a_row", "state")

    def __init__(self) -> None:
        self.state = State.AWAITING_AUTH
        self.errors_in_a_row = 0

    def receive(self, raw: str | bytes) -> frames.ClientFrame | Rejection:
        if self.state is State.CLOSED:
            return Rejection(frames.ErrorFrame(code=Code.BAD_REQUEST, message="connection is closing"))
        try:
            frame: frames.ClientFrame = _decoder.decode(raw)
        except msgspec.ValidationError as exc:
            return self._reject(_classify(str(exc)), str(exc), _salvage_rid(raw))
        except msgspec.DecodeError as exc:
            return self._reject(Code.BAD_REQUEST, f"malformed JSON: {exc}")
        except HubbubError as exc:  # a frame's own check (frames.ClientFrame.__post_init__): a bad id
            return self._reject(exc.code, exc.message, _salvage_rid(raw))

        if self.state is not State.READY:
            if isinstance(frame, frames.Auth) and self.state is State.AWAITING_AUTH:
                self.state = State.AUTHENTICATING
                self.errors_in_a_row = 0
                return frame
            error = frames.ErrorFrame(
                code=Code.NOT_AUTHENTICATED,
                message="the first frame must be auth",
                rid=getattr(frame, "rid", None),
            )
            self.state = State.CLOSED
            return Rejection(error, Close.UNAUTHORIZED)
        if isinstance(frame, frames.Auth):
            return self._reject(Code.BAD_REQUEST, "already authenticated", getattr(frame, "rid", None))
        self.errors_in_a_row = 0
        return frame

    def authenticated(self) -> None:
        self.state = State.READY

    def closed(self) -> None:
        self.state = State.CLOSED

    def _reject(self, code: Code, message: str, rid: frames.Rid = None) -> Rejection:
        self.errors_in_a_row += 1
        close = None
        if self.state is not State.READY:
            # Before auth there is no second chance: an unauthenticated peer gets no free parsing.
            close = Close.UNAUTHORIZED
        elif self.errors_in_a_row >= MAX_CONSECUTIVE_ERRORS:
            close = Close.PROTOCOL
        if close is not None:
            self.state = State.CLOSED
        return Rejection(frames.ErrorFrame(code=code, message=message, rid=rid), close)


def _classify(message: str) -> Code:
    """msgspec names the failing path; a bad or missing ``type`` is an unknown frame, the rest bad fields."""
    if message.endswith("`$.type`") or "missing required field `type`" in message:
        return Code.UNKNOWN_TYPE
    if message.startswith("Expected `object`") and "- at `$" not in message:
        return Code.BAD_REQUEST  # the frame itself is not an object
    return Code.INVALID_FIELD


def _salvage_rid(raw: str | bytes) -> frames.Rid:
    """The rid of a frame that failed validation, so the client can match the error to its request."""
    try:
        obj = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return None
    rid = obj.get("rid") if isinstance(obj, dict) else None
    return rid if isinstance(rid, str | int) and not isinstance(rid, bool) else None
