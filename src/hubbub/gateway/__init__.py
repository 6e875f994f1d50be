"""The real-time gateway (the seed's im-server): WebSocket connections, heartbeats, delivery to sockets.

It only moves data: frames in go through ``protocol.session`` to ``handlers`` and on to services; events
out arrive from routing at the ``hub``, which writes them to local sockets. Docs: docs/architecture.md.
"""
