"""A small bot framework on top of :class:`HubbubClient` (docs/integrations.md, "Writing a bot").

    bot = Bot("https://chat.example.org", os.environ["HUBBUB_BOT_TOKEN"])

    @bot.on_message
    async def echo(m: Incoming) -> None:
        await m.reply(f"echo: {m.text}")

    asyncio.run(bot.run())

Handlers get each text message pushed to the bot (never its own). ``on_mention`` handlers get the group
messages that @mention the bot; when a mention handler exists, a mention goes to it instead of the message
handlers. Replies are idempotent: their cmid is derived from the message answered, so a message handled twice
(a reconnect) is answered once. The SDK underneath reconnects, resyncs and retries sends by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hubbub.client.sdk import HubbubClient

log = logging.getLogger(__name__)

Handler = Callable[["Incoming"], Awaitable[None]]


class Incoming:
    """A message the bot received, with what it needs to answer."""

    def __init__(self, bot: Bot, msg: dict[str, Any]) -> None:
        self.bot = bot
        self.msg = msg
        self._replies = 0

    @property
    def text(self) -> str:
        return str(self.msg["body"].get("text", ""))

    @property
    def conv(self) -> str:
        return str(self.msg["conv"])

    @property
    def sender(self) -> int:
        return int(self.msg["sender"])

    @property
    def mentioned(self) -> bool:
        return self.bot.user_id in (self.msg["body"].get("mentions") or [])

    async def reply(self, text: str, *, markdown: bool = False) -> dict[str, Any]:
        """Answer in the same conversation; the ack. The n-th reply to a message always has the same cmid."""
        self._replies += 1
        body: dict[str, Any] = {"text": text}
        if markdown:
            body["format"] = "markdown"
        cmid = f"re-{self.msg['id']}-{self._replies}"
        return await self.bot.client.send({"msg_type": "text", "body": body}, conv=self.conv, cmid=cmid)


class Bot:
    def __init__(self, base_url: str | Sequence[str], token: str, *, terminal: str = "desktop") -> None:
        self.client = HubbubClient(base_url, terminal=terminal)
        self.client.use_bot_token(token)
        self._on_message: list[Handler] = []
        self._on_mention: list[Handler] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def user_id(self) -> int:
        return self.client.user_id

    def on_message(self, handler: Handler) -> Handler:
        self._on_message.append(handler)
        return handler

    def on_mention(self, handler: Handler) -> Handler:
        self._on_mention.append(handler)
        return handler

    async def start(self) -> None:
        """Connect (the token needs the ``read`` scope, and ``send`` to reply) and start handling."""
        await self.client.connect()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="bot")

    async def run(self) -> None:
        """Start, then handle messages until cancelled."""
        await self.start()
        assert self._task is not None
        try:
            await self._task
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop handling (a handler in progress is cancelled) and close the connection.

        Cancelled until it ends: a handler awaiting a send whose ack lands in the same instant may swallow one
        cancellation (``asyncio.wait_for`` on Python 3.11), and the loop then ends at its next event."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            for _ in range(3):
                task.cancel()
                done, _pending = await asyncio.wait([task], timeout=1.0)
                if done:
                    break
        await self.client.close()

    async def _loop(self) -> None:
        while not self._stopping:
            frame = await self.client.events.get()
            if frame["type"] != "msg":
                continue
            msg = frame["msg"]
            if msg["sender"] == self.user_id or msg["type"] != "text":
                continue
            incoming = Incoming(self, msg)
            handlers = self._on_mention if incoming.mentioned and self._on_mention else self._on_message
            for handler in handlers:
                try:
                    await handler(incoming)
                except Exception:  # one handler's bug must not stop the bot
                    log.exception("bot handler %s failed", getattr(handler, "__name__", handler))
