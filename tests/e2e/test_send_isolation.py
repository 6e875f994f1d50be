"""One client's bad send never fails another's (issue 12.3), and every id has one spelling on both transports.

Found by black-box testing: ``g:07`` for a hot group ``g:7`` was accepted as a conversation id and raised
inside the storing batch, failing 91-95 of another user's 100 concurrent private messages with ``internal``.
"""

from __future__ import annotations

import asyncio
import re
from urllib.parse import quote

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage
from hubbub.protocol.session import MAX_CONSECUTIVE_ERRORS
from tests.conftest import PASSWORD, base_url, friends


async def test_a_non_canonical_id_fails_alone_while_another_user_sends_100(make_node):
    node = await make_node(send_burst=10_000)
    url = base_url(node)
    alice, carol, bob = HubbubClient(url), HubbubClient(url), HubbubClient(url)
    try:
        for client, name in ((alice, "iso_alice"), (carol, "iso_carol"), (bob, "iso_bob")):
            await client.register(name, PASSWORD)
        await friends(alice, carol, bob)
        group = await alice.api("POST", "/api/v1/groups", {"name": "hot", "members": [bob.user_id]})
        await alice.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
        for client in (alice, carol, bob):
            await client.connect()
        bad_conv = f"g:0{group['id']}"

        async def bad_sends() -> list[str]:
            codes = []
            # One fewer than the gateway's cut for bad frames in a row (4400, terminal: the SDK stays closed).
            for i in range(MAX_CONSECUTIVE_ERRORS - 1):
                frame = {"type": "send", "cmid": f"bad-{i}", "conv": bad_conv, "msg_type": "text",
                         "body": {"text": "x"}}
                try:
                    await bob.request(frame, timeout=10)
                    codes.append("accepted")
                except ApiError as exc:
                    codes.append(exc.code)
                await asyncio.sleep(0)
            return codes

        sends = [alice.send_text(f"m{i}", to=carol.user_id, cmid=f"iso-{i}", timeout=20) for i in range(100)]
        *acks, codes = await asyncio.gather(*sends, bad_sends())

        assert codes == ["invalid_id"] * (MAX_CONSECUTIVE_ERRORS - 1)
        assert sorted(a["seq"] for a in acks) == list(range(1, 101))
        await carol.wait_until(lambda: carol.convs.get(acks[0]["conv"]) is not None
                               and carol.convs[acks[0]["conv"]].have == 100, timeout=15)
        # And the canonical spelling still works for bob.
        ack = await bob.send_text("fine", conv=group["conv"])
        assert ack["conv"] == group["conv"]
    finally:
        for client in (alice, carol, bob):
            await client.close()


NON_CANONICAL_IDS = ["07", "00", "+7", " 7", "\uff17", "\u00b2", "9" * 30, "1e3"]


async def test_rest_refuses_non_canonical_ids_with_invalid_id(make_node):
    node = await make_node()
    url = base_url(node)
    alice, bob = HubbubClient(url), HubbubClient(url)
    try:
        await alice.register("idrest_a", PASSWORD)
        await bob.register("idrest_b", PASSWORD)
        await friends(alice, bob)
        a, b = alice.user_id, bob.user_id
        conv = f"p:{min(a, b)}:{max(a, b)}"
        group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [b]})
        await alice.api("POST", "/api/v1/messages", {"cmid": "ok", "conv": conv, "body": {"text": "hi"}})
        gid = group["id"]
        paths: list[tuple[str, str, dict[str, object] | None]] = []
        for bad in NON_CANONICAL_IDS:
            if re.search(r"\d", bad):  # a path segment with no digit at all names no route (not_found)
                paths += [
                    ("GET", f"/api/v1/users/{bad}", None),
                    ("GET", f"/api/v1/groups/{bad}", None),
                    ("DELETE", f"/api/v1/groups/{gid}/members/{bad}", None),
                    ("POST", f"/api/v1/friends/requests/{bad}/accept", None),
                    ("POST", f"/api/v1/conversations/{conv}/messages/{bad}/recall", None),
                ]
            paths += [
                ("GET", f"/api/v1/conversations/g:{bad}/messages", None),
                ("GET", f"/api/v1/conversations/{conv}/messages?after_seq={quote(bad)}", None),
                ("GET", f"/api/v1/groups/{gid}/members?after={quote(bad)}", None),
                ("POST", "/api/v1/messages", {"cmid": "c", "conv": f"g:{bad}", "body": {"text": "x"}}),
            ]
        paths += [("GET", "/api/v1/users/0", None), ("GET", "/api/v1/conversations/g:0/messages", None)]
        for spelling in (f"p:{max(a, b)}:{min(a, b)}", f"p:{a}:{a}", f"p:0{min(a, b)}:{max(a, b)}"):
            paths.append(("GET", f"/api/v1/conversations/{spelling}/messages", None))
            paths.append(("POST", f"/api/v1/conversations/{spelling}/read", {"seq": 1}))
            paths.append(("POST", "/api/v1/messages", {"cmid": "c", "conv": spelling, "body": {"text": "x"}}))
        headers = {"Authorization": f"Bearer {alice.access_token}"}
        async with aiohttp.ClientSession() as http:
            for method, path, body in paths:
                async with http.request(method, url + path.replace(" ", "%20"), json=body, headers=headers) as r:
                    reply = await r.json()
                    assert (r.status, reply["error"]["code"]) == (400, "invalid_id"), (method, path, reply)
            async with http.get(url + "/api/v1/users/\u00b2", headers=headers) as r:
                assert (r.status, (await r.json())["error"]["code"]) == (404, "not_found")
        # The canonical spellings of the same things work.
        assert (await alice.api("GET", f"/api/v1/users/{b}"))["id"] == b
        page = await alice.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0)
        assert [m["cmid"] for m in page["messages"]] == ["ok"]
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize("to", [0, 2**31, -1])
async def test_out_of_range_user_ids_in_json_are_invalid_field(make_client, to):
    """A JSON integer has one spelling; out of range it is a bad field (and never reaches the database,
    where 2^31 does not fit an ``integer`` column)."""
    alice = await make_client()
    with pytest.raises(ApiError) as refused:
        await alice.request({"type": "send", "cmid": "c", "to": to, "msg_type": "text", "body": {"text": "x"}})
    assert refused.value.code == "invalid_field"
    with pytest.raises(ApiError) as refused:
        await alice.api("POST", "/api/v1/friends/requests", {"to": to})
    assert refused.value.code == "invalid_field"


async def test_a_resend_pushes_its_stored_message_again_embedded(node, make_client):
    """Issue 12.5 on the embedded default (SQLite's one-call writer): a message stored without being pushed
    (its node died in between; here stored straight through the storage engine) is pushed on its resend.
    The cluster version is tests/cluster/test_republish.py."""
    alice, bob = await make_client(), await make_client()
    await friends(alice, bob)
    a, b = sorted((alice.user_id, bob.user_id))
    item = NewMessage(id=MessageIds("gone").next(), conv=f"p:{a}:{b}", sender=alice.user_id, cmid="resend-1",
                      type="text", body={"text": "late"}, ts=now_ms(), members=(a, b))
    (stored,) = await node.storage.store_messages([item])
    ack = await alice.send_text("late", to=bob.user_id, cmid="resend-1")
    assert ack["id"] == stored.message.id
    frame = await bob.next_event("msg", timeout=5, where=lambda f: f["msg"]["id"] == ack["id"])
    assert frame["msg"]["seq"] == 1


async def test_values_postgresql_cannot_store_are_refused_at_the_edge(make_client):
    """A NUL in a cmid and a mention past 2^31 - 1 reached PostgreSQL and failed their whole batch as
    ``unavailable`` (503); they are bad fields of the one send that carries them."""
    alice, bob = await make_client(), await make_client()
    await friends(alice, bob)
    group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [bob.user_id]})
    bad_sends = [
        {"cmid": "nul\x00", "to": bob.user_id, "msg_type": "text", "body": {"text": "x"}},
        {"cmid": "tab\t", "to": bob.user_id, "msg_type": "text", "body": {"text": "x"}},
        {"cmid": "far", "conv": group["conv"], "msg_type": "text", "body": {"text": "x", "mentions": [2**40]}},
    ]
    for frame in bad_sends:
        with pytest.raises(ApiError) as refused:
            await alice.request({"type": "send", **frame})
        assert refused.value.code == "invalid_field", frame
    ack = await alice.send_text("fine", conv=group["conv"])
    assert ack["seq"] >= 2
