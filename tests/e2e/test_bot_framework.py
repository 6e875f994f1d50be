"""The SDK's bot framework (hubbub/client/bots.py), running the echo bot of docs/examples/echo_bot.py against a
real node: private messages echoed, group mentions answered by the mention handler, replies idempotent."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tests.e2e.test_integrations import group_with, make_bot

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "echo_bot.py"


def load_example():
    spec = importlib.util.spec_from_file_location("echo_bot", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_the_echo_bot_example(make_client):
    alice = await make_client("fw_alice")
    bob = await make_client("fw_bob")
    await alice.befriend(bob)
    bot_info, as_bot = await make_bot(alice, "echo_bot", ["send", "read"])
    await as_bot.close()
    bot_id = bot_info["user"]["id"]
    issued = await alice.api("POST", f"/api/v1/bots/{bot_id}/tokens", {"scopes": ["send", "read"]})
    bot = load_example().build_bot(alice.base_url, issued["secret"])
    await bot.start()

    try:
        await alice.api("POST", "/api/v1/friends/requests", {"to": bot_id})
        await alice.send_text("hello bot", to=bot_id)
        echoed = await alice.next_event("msg", where=lambda f: f["msg"]["sender"] == bot_id)
        assert echoed["msg"]["body"]["text"] == "echo: hello bot"

        conv = await group_with(alice, bob.user_id, bot_id)
        await bob.send({"msg_type": "text", "body": {"text": "just chatting"}}, conv=conv)
        first = await bob.next_event("msg", where=lambda f: f["msg"]["sender"] == bot_id)
        assert first["msg"]["body"]["text"] == "echo: just chatting"
        await bob.send(
            {"msg_type": "text", "body": {"text": "@echo_bot hi", "mentions": [bot_id]}}, conv=conv
        )
        answer = await bob.next_event("msg", where=lambda f: f["msg"]["sender"] == bot_id)
        assert answer["msg"]["body"]["text"] == f"you called, user {bob.user_id}? you said: @echo_bot hi"
        assert answer["msg"]["cmid"].startswith("re-")
    finally:
        await bot.close()
