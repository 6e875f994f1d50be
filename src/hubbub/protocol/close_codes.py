"""WebSocket close codes. "Terminal" ones tell a client not to reconnect on its own (docs/protocol.md)."""

from enum import IntEnum


class Close(IntEnum):
    NORMAL = 1000
    GOING_AWAY = 1001
    TOO_BIG = 1009
    PROTOCOL = 4400
    UNAUTHORIZED = 4401
    REVOKED = 4403
    HEARTBEAT_TIMEOUT = 4408
    REPLACED = 4409
    SLOW_CONSUMER = 4429
    #: The user holds ``max_ws_per_user`` connections on this node already: reconnect later, with backoff.
    TOO_MANY_CONNECTIONS = 4430
    DRAINING = 4503


TERMINAL = frozenset({Close.UNAUTHORIZED, Close.REVOKED, Close.REPLACED})
