"""The integrations storage contract (engines/storage/base_integrations.py), on SQLite and a real PostgreSQL:
bots and tokens, a webhook's lease held by one node at a time, and single-use sign-in states and tickets."""

from __future__ import annotations

import asyncio

import msgspec

from hubbub.engines.storage.base import NewMessage
from hubbub.engines.storage.base_integrations import Delivery, OidcFlow
from tests.contract import test_storage as storage_contract
from tests.contract.test_storage import NOW, MakeStorage

make_storage = storage_contract.make_storage
storage = storage_contract.storage


async def test_bots_are_users_marked_bot_with_hashed_scoped_tokens(make_storage: MakeStorage) -> None:
    s = await make_storage()
    owner = await s.create_user("bot_owner", "O", "h", NOW)
    bot = await s.create_bot("a_bot", "A Bot", owner.id, NOW)
    assert bot.bot and (await s.users([bot.id]))[bot.id].bot
    assert not (await s.users([owner.id]))[owner.id].bot
    account = await s.account(bot.id)
    assert account is not None and not account.is_admin  # never the fresh server's first-user admin
    assert [b.user.id for b in await s.bots(owner.id)] == [bot.id] and await s.bots(bot.id) == []
    token = await s.add_bot_token(bot.id, "f" * 64, ["send", "read"], "ci", NOW)
    found = await s.bot_credential("f" * 64)
    assert (
        found is not None
        and found.bot_id == bot.id
        and found.scopes == ("send", "read")
        and not found.revoked
    )
    assert await s.bot_credential("e" * 64) is None
    assert not await s.revoke_bot_token(owner.id, token.id)  # not that bot's token
    assert await s.revoke_bot_token(bot.id, token.id)
    assert (await s.bot_credential("f" * 64)).revoked  # type: ignore[union-attr]


async def test_a_webhook_lease_is_one_nodes_and_only_it_moves_the_cursor(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    owner = await one.create_user("hook_owner", "O", "h", NOW)
    hook = await one.create_outgoing_hook(
        owner.id, "g:1", "https://x.invalid/", "s" * 64, ["message"], None, NOW
    )
    assert hook.cursor_seq == 0
    claims = await asyncio.gather(
        one.claim_webhook(hook.id, "n1", NOW, 10_000), two.claim_webhook(hook.id, "n2", NOW, 10_000)
    )
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    holder, other = ("n1", "n2") if claims[0] is not None else ("n2", "n1")
    assert not await one.advance_webhook(hook.id, other, 5)
    assert await one.advance_webhook(hook.id, holder, 5)
    assert not await one.advance_webhook(hook.id, holder, 4)  # never backwards
    delivered = Delivery(webhook_id=hook.id, event_id="e6", event="message", attempt=1, status=200, ok=True,
                         duration_ms=1, ts=NOW, node=holder)  # fmt: skip
    assert await one.log_delivery(delivered, 50, advance_to=6)  # logged and moved in one transaction
    assert not await one.log_delivery(msgspec.structs.replace(delivered, node=other), 50, advance_to=7)
    assert len(await one.deliveries(hook.id, 50)) == 2
    assert (await one.outgoing_hook(hook.id)).cursor_seq == 6  # type: ignore[union-attr]
    assert await two.claim_webhook(hook.id, other, NOW + 5_000, 10_000) is None
    taken = await two.claim_webhook(hook.id, other, NOW + 20_000, 10_000)  # the lease ran out
    assert taken is not None and taken.cursor_seq == 6
    assert await one.fail_webhook(hook.id, other, 3, NOW + 99_000, True)
    assert await one.claim_webhook(hook.id, other, NOW + 100_000, 10_000) is None  # disabled
    assert await one.enable_outgoing_hook(hook.id)
    again = await one.outgoing_hook(hook.id)
    assert again is not None and again.enabled and again.failures == 0


async def test_a_new_webhook_starts_at_the_newest_message(make_storage: MakeStorage) -> None:
    s = await make_storage()
    a = await s.create_user("cursor_a", "A", "h", NOW)
    b = await s.create_user("cursor_b", "B", "h", NOW)
    conv = f"p:{a.id}:{b.id}"
    for i in range(3):
        await s.store_messages(
            [
                NewMessage(
                    id=1000 + i,
                    conv=conv,
                    sender=a.id,
                    cmid=f"c{i}",
                    type="text",
                    body={"text": "x"},
                    ts=NOW,
                    members=(a.id, b.id),
                )
            ]
        )
    hook = await s.create_outgoing_hook(a.id, conv, "https://x.invalid/", "s" * 64, ["message"], None, NOW)
    assert hook.cursor_seq == 3


async def test_the_webhooks_waiting_are_those_with_a_message_past_their_cursor(
    make_storage: MakeStorage,
) -> None:
    """The dispatcher's sweep asks this in one query: enabled, and the conversation went past the cursor."""
    s = await make_storage()
    a = await s.create_user("wait_a", "A", "h", NOW)
    b = await s.create_user("wait_b", "B", "h", NOW)
    conv = f"p:{a.id}:{b.id}"

    async def say(i: int) -> None:
        new = NewMessage(id=2000 + i, conv=conv, sender=a.id, cmid=f"w{i}", type="text", body={"text": "x"},
                         ts=NOW, members=(a.id, b.id))  # fmt: skip
        await s.store_messages([new])

    await say(1)
    hook = await s.create_outgoing_hook(a.id, conv, "https://x.invalid/", "s" * 64, ["message"], None, NOW)
    elsewhere = await s.create_outgoing_hook(
        a.id, "g:9", "https://x.invalid/", "s" * 64, ["message"], None, NOW
    )
    assert await s.webhooks_waiting() == set()  # a new webhook starts at the newest message
    await say(2)
    assert await s.webhooks_waiting() == {hook.id}
    assert await s.claim_webhook(hook.id, "n1", NOW, 10_000) is not None
    assert await s.advance_webhook(hook.id, "n1", 2)
    assert await s.webhooks_waiting() == set()
    await say(3)
    assert await s.fail_webhook(hook.id, "n1", 9, NOW, True)  # disabled: not the dispatcher's
    assert await s.webhooks_waiting() == set()
    assert await s.enable_outgoing_hook(hook.id)
    assert await s.webhooks_waiting() == {hook.id}
    assert elsewhere.id not in await s.webhooks_waiting()


async def test_the_delivery_log_keeps_the_newest(make_storage: MakeStorage) -> None:
    s = await make_storage()
    for i in range(7):
        entry = Delivery(
            webhook_id=9,
            event_id=f"9-{i}",
            event="message",
            attempt=1,
            status=200,
            ok=True,
            duration_ms=1,
            ts=NOW + i,
        )
        await s.log_delivery(entry, keep=5)
    kept = await s.deliveries(9, 50)
    assert [d.event_id for d in kept] == [f"9-{i}" for i in (6, 5, 4, 3, 2)]


async def test_sign_in_states_and_tickets_are_single_use(make_storage: MakeStorage) -> None:
    one, two = await make_storage(), await make_storage()
    await one.create_oidc_flow(
        OidcFlow(state="st", verifier="v", nonce="n", redirect_uri="http://x/cb", created_at=NOW)
    )
    taken = await asyncio.gather(one.take_oidc_flow("st", NOW - 1), two.take_oidc_flow("st", NOW - 1))
    assert sum(t is not None for t in taken) == 1
    await one.create_oidc_flow(
        OidcFlow(state="old", verifier="v", nonce="n", redirect_uri="http://x/cb", created_at=NOW)
    )
    assert await one.take_oidc_flow("old", NOW + 1) is None  # too old
    await one.set_oidc_ticket("st", "t" * 64, 42)
    assert await one.take_oidc_ticket("t" * 64, NOW - 1) == 42
    assert await two.take_oidc_ticket("t" * 64, NOW - 1) is None
    await one.link_oidc("https://idp", "sub", 42, NOW)
    await one.link_oidc("https://idp", "sub", 43, NOW)  # linked already: the first link stays
    assert (
        await two.oidc_user("https://idp", "sub") == 42
        and await two.oidc_user("https://other", "sub") is None
    )
