"""The gateway's side of hot-group signalling: hand the node's live terminals to the Signaller, write bytes.

Who is signalled, and when, is decided in ``services/hot/signals.py``; this only frames the encoded ``news``
payload once and writes it to the connections it was given.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from hubbub.gateway.connection import Connection
from hubbub.gateway.hub import Hub
from hubbub.gateway.wire import text_frame


class HubAudience:
    """Implements ``services.hot.signals.Audience`` over the node's hub."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    @property
    def terminals(self) -> Mapping[int, Sequence[Connection]]:
        return self.hub.by_user

    def send(self, terminals: Collection[Connection], payload: bytes) -> int:
        frame = text_frame(payload)
        return sum(1 for conn in terminals if conn.write(frame))
