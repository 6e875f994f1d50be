"""The asyncio Python SDK (the seed's im-client), used by tests, benchmarks, bots and scripts.

    async with HubbubClient("http://127.0.0.1:8080") as c:
        await c.login("alice", "correct horse")
        await c.connect()
        ack = await c.send_text(to=bob_id, text="hi")
        event = await c.next_event("msg")

It follows docs/protocol.md: heartbeats, reconnect with backoff, sync by seq after every (re)connect, and
sends retried with the same cmid until acknowledged, so nothing is sent twice or lost.
"""

from hubbub.client.bots import Bot, Incoming
from hubbub.client.sdk import ApiError, ClosedError, HubbubClient

__all__ = ["ApiError", "Bot", "ClosedError", "HubbubClient", "Incoming"]
