"""An echo bot (docs/integrations.md, "Writing a bot"): repeats every text it is sent, and answers an @mention
in a group by name.

    HUBBUB_URL=http://127.0.0.1:8080 HUBBUB_BOT_TOKEN=hbb_... python docs/examples/echo_bot.py

The token needs the ``read`` and ``send`` scopes. Befriend the bot (it accepts at once) to talk to it, or
invite it to a group.
"""

from __future__ import annotations

import asyncio
import os

from hubbub.client import Bot, Incoming


def build_bot(url: str, token: str) -> Bot:
    bot = Bot(url, token)

    @bot.on_message
    async def echo(message: Incoming) -> None:
        await message.reply(f"echo: {message.text}")

    @bot.on_mention
    async def mentioned(message: Incoming) -> None:
        await message.reply(f"you called, user {message.sender}? you said: {message.text}")

    return bot


if __name__ == "__main__":
    asyncio.run(
        build_bot(os.environ.get("HUBBUB_URL", "http://127.0.0.1:8080"), os.environ["HUBBUB_BOT_TOKEN"]).run()
    )
