"""WebSocket close codes, and the rule that sorts them into "reconnect" and "terminal" (docs/protocol.md).

The rule goes by range, the way centrifuge's ``disconnect.go`` does, so a client can classify a code it has
never seen (one a newer server added) without a copied list:

- 4000–4499 **terminal**: reconnecting as before cannot help. The client must act first (refresh its token
  after 4401, log in again after 4403, let the user choose after 4409, fix itself after 4400), or stay closed.
- 4500–4999 **reconnect**: a passing condition of the connection or the node; reconnect by itself, with
  backoff, to any node.
- Everything else (the standard 1000–2999 and library 3000–3999 codes, or no close frame at all): reconnect
  with backoff.

The halves echo HTTP: the last two digits follow the status they resemble (4401 ~ 401, 4503 ~ 503), a
client-side verdict in the 44xx half and a server-side condition in the 45xx half. A new code must be placed
in the half that matches what the client should do, never by its mnemonic alone.
"""

from enum import IntEnum

#: The terminal range, both ends included.
TERMINAL_MIN = 4000
TERMINAL_MAX = 4499


class Close(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    TOO_BIG = 1009
    # -- terminal (4000-4499) ------------------------------------------------------------------------
    #: The client sent MAX_CONSECUTIVE_ERRORS invalid frames in a row (protocol/session.py): a broken client
    #: reconnecting would only do it again.
    PROTOCOL = 4400
    #: No valid ``auth`` in time, or its token was refused: refresh the token (or log in), then reconnect.
    UNAUTHORIZED = 4401
    #: The session ended (logout, password change, refresh-token reuse, ban): log in again.
    REVOKED = 4403
    #: A newer login on the same terminal took this one's place.
    REPLACED = 4409
    #: The user opened more than ``max_sessions_per_user`` sessions and this was the idlest (issue 15).
    #: Terminal: reconnecting by itself would evict another of the user's sessions in turn.
    EVICTED = 4410
    # -- reconnect (4500-4999) -----------------------------------------------------------------------
    #: The node drains (restart, deploy): reconnect, to any node.
    DRAINING = 4503
    #: The client sent nothing for 2.5 heartbeats.
    HEARTBEAT_TIMEOUT = 4508
    #: The client did not read its pushes fast enough (its send buffer passed ``max_send_buffer``).
    SLOW_CONSUMER = 4529
    #: The user holds ``max_ws_per_user`` connections on this node already: reconnect later, with backoff.
    TOO_MANY_CONNECTIONS = 4530


def is_terminal(code: int | None) -> bool:
    """True if a client must not simply reconnect after this close code (it must act, or stay closed).

    Decided by range only, so codes this function has never heard of are classified too. ``None`` (the
    socket dropped without a close frame) is not terminal.
    """
    return code is not None and TERMINAL_MIN <= code <= TERMINAL_MAX
