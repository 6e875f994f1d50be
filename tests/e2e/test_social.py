"""Issue 15 end to end, through real sockets: several live sessions per user (devices, the cap, eviction),
live profile changes, blocks refused on every path, remarks, last seen and its privacy, chat preferences
synced across sessions, group read counts pushed, sessions list and password change."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.core.convs import private_conv
from hubbub.node import Node
from hubbub.protocol.close_codes import Close
from tests.conftest import PASSWORD, base_url, friends

MakeClient = Callable[..., Awaitable[HubbubClient]]


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[Node]]) -> Node:
    return await make_node(max_sessions_per_user=3, receipt_push_window_ms=100, profile_push_group_limit=3)


@pytest.fixture
async def another(node: Node) -> Any:
    """Another session (login) of an existing user, on its own device."""
    made: list[HubbubClient] = []

    async def login(of: HubbubClient, device: str | None, *, terminal: str = "web") -> HubbubClient:
        client = HubbubClient(base_url(node), terminal=terminal, device=device)
        made.append(client)
        assert of.user is not None
        await client.login(of.user["username"], PASSWORD)
        await client.connect()
        return client

    yield login
    for client in made:
        await client.close()


async def no_event(client: HubbubClient, kind: str, wait: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await client.next_event(kind, timeout=wait)


async def closed_with(client: HubbubClient, code: int) -> None:
    await client.wait_until(lambda: client.close_code == code)


def text(to: int, words: str = "hi") -> dict[str, Any]:
    return {"type": "send", "cmid": f"c-{words}-{to}", "to": to, "msg_type": "text", "body": {"text": words}}


# -- several live sessions ---------------------------------------------------------------------------
async def test_two_tabs_of_one_user_are_both_live_and_both_receive(make_client: MakeClient, another: Any) -> None:
    alice = await make_client(device="tab-1")
    bob = await make_client()
    await friends(alice, bob)
    alice_tab2 = await another(alice, "tab-2")
    assert alice.close_code is None  # the first tab stays: another device is not a replacement
    await bob.send_text("to both tabs", to=alice.user_id)
    for tab in (alice, alice_tab2):
        pushed = await tab.next_event("msg", where=lambda f: f["msg"]["body"].get("text") == "to both tabs")
        assert pushed["msg"]["sender"] == bob.user_id
    # a send from one tab reaches the other tab of the same user
    ack = await alice_tab2.send_text("from tab 2", to=bob.user_id)
    mine = await alice.next_event("msg", where=lambda f: f["msg"]["seq"] == ack["seq"])
    assert mine["msg"]["sender"] == alice.user_id
    # presence shows terminal classes, once, never device ids
    friends_of_bob = (await bob.api("GET", "/api/v1/friends"))["friends"]
    assert friends_of_bob[0]["online"] is True
    # reading in one tab is seen by the other
    await alice.request({"type": "read", "conv": ack["conv"], "seq": ack["seq"]})
    read = await alice_tab2.next_event("read", where=lambda f: f["user"] == alice.user_id)
    assert read["seq"] == ack["seq"]


async def test_the_same_device_reconnecting_replaces_only_itself(make_client: MakeClient, another: Any) -> None:
    alice = await make_client(device="tab-1")
    other_tab = await another(alice, "tab-2")
    again = await another(alice, "tab-1")  # tab-1 reloaded
    await closed_with(alice, Close.REPLACED)
    assert other_tab.close_code is None and again.close_code is None


async def test_auth_ok_names_device_and_session_and_a_bad_device_is_refused(
    make_client: MakeClient, node: Node
) -> None:
    alice = await make_client(connect=False)
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(f"{base_url(node)}/ws") as ws:
        await ws.send_json({"type": "auth", "token": alice.access_token, "terminal": "web", "device": "d-1"})
        ok = await ws.receive_json()
        assert ok["type"] == "auth_ok" and ok["device"] == "d-1" and len(ok["session"]) == 32
    async with aiohttp.ClientSession() as http, http.ws_connect(f"{base_url(node)}/ws") as ws:
        await ws.send_json({"type": "auth", "token": alice.access_token, "terminal": "web", "device": "a b#c"})
        refused = await ws.receive_json()
        assert refused["code"] == "invalid_field"
        await ws.receive()
        assert ws.close_code == Close.UNAUTHORIZED


async def test_past_the_cap_the_idlest_session_is_evicted(make_client: MakeClient, another: Any) -> None:
    first = await make_client(device="d-0")  # the cap is 3 in this module
    second = await another(first, "d-1")
    third = await another(first, "d-2")
    await asyncio.sleep(0.01)
    await first.request({"type": "sync"})  # d-0 is active now: d-1 is the idlest
    await asyncio.sleep(0.01)
    fourth = await another(first, "d-3")
    await closed_with(second, Close.EVICTED)
    await asyncio.sleep(0.3)  # a terminal code: the SDK does not reconnect (it would evict another)
    with pytest.raises(ConnectionError):
        await second.request({"type": "sync"})
    for alive in (first, third, fourth):
        assert alive.close_code is None
        await alive.request({"type": "ping"})


async def test_clients_without_a_device_keep_one_connection_per_terminal(
    make_client: MakeClient, another: Any
) -> None:
    alice = await make_client()
    web_again = await another(alice, None)
    await closed_with(alice, Close.REPLACED)
    phone = await another(alice, None, terminal="mobile")
    assert web_again.close_code is None and phone.close_code is None


# -- live profiles ------------------------------------------------------------------------------------
async def test_a_rename_is_seen_live_by_friends_and_fellow_members(make_client: MakeClient) -> None:
    alice = await make_client()
    bob = await make_client()
    carol = await make_client()
    await friends(alice, bob)
    await friends(bob, carol)
    await bob.api("POST", "/api/v1/groups", {"name": "club", "members": [alice.user_id, carol.user_id]})
    stranger = await make_client()
    await alice.api("PATCH", "/api/v1/me", {"nickname": "Alice Liddell"})
    for viewer in (bob, carol, alice):  # a friend, a fellow member who is no friend, her own sessions
        pushed = await viewer.next_event("profile")
        assert pushed["user"]["id"] == alice.user_id and pushed["user"]["nickname"] == "Alice Liddell"
    await no_event(stranger, "profile")
    await alice.api("PATCH", "/api/v1/me", {"nickname": "Alice Liddell"})  # no change, no push
    await no_event(bob, "profile")


async def test_profile_pushes_are_bounded_by_group_size_and_skip_hot_groups(make_client: MakeClient) -> None:
    alice, bob, carol, dave = [await make_client() for _ in range(4)]
    for other in (alice, carol, dave):
        await bob.befriend(other)  # carol and alice are not friends
    big = await bob.api(
        "POST", "/api/v1/groups", {"name": "big", "members": [alice.user_id, carol.user_id, dave.user_id]}
    )
    assert big["member_count"] == 4  # above profile_push_group_limit (3) in this module
    small = await bob.api("POST", "/api/v1/groups", {"name": "hot", "members": [alice.user_id, carol.user_id]})
    await bob.api("PATCH", f"/api/v1/groups/{small['id']}", {"hot": True})  # push-pull: no per-member frames
    await alice.api("PATCH", "/api/v1/me", {"signature": "new here"})
    assert (await bob.next_event("profile"))["user"]["signature"] == "new here"  # a friend
    await no_event(carol, "profile")  # a fellow member only of a big and a hot group


async def test_a_second_tab_does_not_announce_presence_again(make_client: MakeClient, another: Any) -> None:
    alice = await make_client(device="t1")
    bob = await make_client()
    await friends(alice, bob)
    await another(alice, "t2")
    await no_event(bob, "presence")  # still just "web" to her friends


# -- blocking -----------------------------------------------------------------------------------------
async def test_a_block_is_refused_end_to_end(make_client: MakeClient) -> None:
    alice = await make_client()
    bob = await make_client()
    await friends(alice, bob)
    blocked = await alice.api("PUT", f"/api/v1/blocks/{bob.user_id}")
    assert blocked["user"]["id"] == bob.user_id
    assert (await alice.next_event("block"))["event"] == "blocked"
    # bob sees alice go offline, and she stays offline to him
    gone = await bob.next_event("presence", where=lambda p: p["user"] == alice.user_id)
    assert gone["online"] is False
    row = (await bob.api("GET", "/api/v1/friends"))["friends"][0]
    assert row["online"] is False and row["last_seen"] is None
    profile = await bob.api("GET", f"/api/v1/users/{alice.user_id}/profile")
    assert profile["blocked_me"] is True and profile["online"] is False and profile["last_seen"] is None
    # no message, typing, friend request or call, either way
    for client, peer in ((bob, alice), (alice, bob)):
        with pytest.raises(ApiError) as refused:
            await client.request(text(peer.user_id, f"blocked{client.user_id}"))
        assert refused.value.code == "blocked"
        with pytest.raises(ApiError) as call:
            await client.request({"type": "call_invite", "to": peer.user_id})
        assert call.value.code == "blocked"
    with pytest.raises(ApiError) as rest:
        await bob.api("POST", "/api/v1/messages", {"cmid": "r1", "to": alice.user_id, "type": "text", "body": {"text": "x"}})
    assert rest.value.code == "blocked" and rest.value.status == 403
    await no_event(alice, "msg")
    await no_event(alice, "call_incoming", 0.05)
    await alice.api("DELETE", f"/api/v1/friends/{bob.user_id}")
    with pytest.raises(ApiError) as request:
        await bob.api("POST", "/api/v1/friends/requests", {"to": alice.user_id})
    assert request.value.code == "blocked"
    # the list, then unblocking restores everything
    assert [b["user"]["id"] for b in (await alice.api("GET", "/api/v1/blocks"))["blocks"]] == [bob.user_id]
    again = await alice.api("PUT", f"/api/v1/blocks/{bob.user_id}")
    assert again["since"] == blocked["since"]
    await alice.api("DELETE", f"/api/v1/blocks/{bob.user_id}")
    assert (await alice.next_event("block", where=lambda b: b["event"] == "unblocked"))["user"]["id"] == bob.user_id
    assert (await alice.api("GET", "/api/v1/blocks"))["blocks"] == []
    await bob.api("POST", "/api/v1/friends/requests", {"to": alice.user_id})


async def test_bad_blocks(make_client: MakeClient) -> None:
    alice = await make_client(connect=False)
    for path, code in [
        (f"/api/v1/blocks/{alice.user_id}", "invalid_field"),
        ("/api/v1/blocks/999999", "not_found"),
        ("/api/v1/blocks/07", "invalid_id"),
    ]:
        with pytest.raises(ApiError) as err:
            await alice.api("PUT", path)
        assert err.value.code == code, path
    await alice.api("DELETE", "/api/v1/blocks/999999")  # not blocked: nothing to do


async def test_group_messages_of_a_blocked_user_still_arrive_for_the_client_to_collapse(
    make_client: MakeClient,
) -> None:
    alice = await make_client()
    bob = await make_client()
    await friends(alice, bob)
    group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [bob.user_id]})
    await alice.api("PUT", f"/api/v1/blocks/{bob.user_id}")
    await bob.send_text("in the group", conv=group["conv"])
    pushed = await alice.next_event("msg", where=lambda f: f["msg"]["conv"] == group["conv"] and f["msg"]["type"] == "text")
    assert pushed["msg"]["sender"] == bob.user_id


# -- remarks, last seen -------------------------------------------------------------------------------
async def test_remarks_and_last_seen_with_privacy(make_client: MakeClient) -> None:
    alice = await make_client()
    bob = await make_client()
    await friends(alice, bob)
    set_ = await alice.api("PUT", f"/api/v1/contacts/{bob.user_id}/remark", {"remark": "  Bobby\u200b  "})
    assert set_ == {"user": bob.user_id, "remark": "Bobby"}
    assert (await alice.next_event("remark"))["remark"] == "Bobby"
    row = (await alice.api("GET", "/api/v1/friends"))["friends"][0]
    assert row["remark"] == "Bobby"
    assert (await bob.api("GET", "/api/v1/friends"))["friends"][0]["remark"] == ""  # private
    with pytest.raises(ApiError) as long:
        await alice.api("PUT", f"/api/v1/contacts/{bob.user_id}/remark", {"remark": "x" * 65})
    assert long.value.code == "invalid_field"

    assert await bob.api("GET", "/api/v1/me/privacy") == {"last_seen": "friends"}
    await bob.disconnect()
    offline = await alice.next_event("presence", where=lambda p: p["user"] == bob.user_id and not p["online"])
    assert offline["last_seen"] > 0
    row = (await alice.api("GET", "/api/v1/friends"))["friends"][0]
    assert row["online"] is False and row["last_seen"] == offline["last_seen"]
    stranger = await make_client(connect=False)
    assert (await stranger.api("GET", f"/api/v1/users/{bob.user_id}/profile"))["last_seen"] is None
    await bob.api("PATCH", "/api/v1/me/privacy", {"last_seen": "everyone"})
    assert (await stranger.api("GET", f"/api/v1/users/{bob.user_id}/profile"))["last_seen"] == offline["last_seen"]
    await bob.api("PATCH", "/api/v1/me/privacy", {"last_seen": "nobody"})
    assert (await alice.api("GET", "/api/v1/friends"))["friends"][0]["last_seen"] is None
    with pytest.raises(ApiError) as bad:
        await bob.api("PATCH", "/api/v1/me/privacy", {"last_seen": "some"})
    assert bad.value.code == "invalid_field"


# -- chat preferences ---------------------------------------------------------------------------------
async def test_chat_prefs_sync_across_sessions(make_client: MakeClient, another: Any) -> None:
    alice = await make_client(device="a")
    bob = await make_client()
    await friends(alice, bob)
    laptop = await another(alice, "b")
    conv = private_conv(alice.user_id, bob.user_id)
    prefs = await alice.api("PATCH", f"/api/v1/conversations/{conv}/prefs", {"pinned": True, "muted": True})
    assert prefs["pinned"] > 0 and prefs["muted"] is True and prefs["archived"] is False
    pushed = await laptop.next_event("prefs")
    assert pushed["prefs"] == prefs
    await alice.api("PATCH", f"/api/v1/conversations/{conv}/prefs", {"marked_unread": True})
    listed = (await laptop.api("GET", "/api/v1/me/chat_prefs"))["prefs"]
    assert [(p["conv"], p["marked_unread"]) for p in listed] == [(conv, True)]
    ack = await bob.send_text("hello", to=alice.user_id)
    await laptop.request({"type": "read", "conv": conv, "seq": ack["seq"]})  # reading clears the mark
    cleared = await alice.next_event("prefs", where=lambda p: not p["prefs"]["marked_unread"])
    assert cleared["prefs"]["pinned"] == prefs["pinned"]
    await alice.api("PATCH", f"/api/v1/conversations/{conv}/prefs", {"pinned": False, "muted": False})
    assert (await alice.api("GET", "/api/v1/me/chat_prefs"))["prefs"] == []
    with pytest.raises(ApiError) as not_mine:
        await bob.api("PATCH", "/api/v1/conversations/p:1:999/prefs", {"archived": True})
    assert not_mine.value.code == "forbidden"


async def test_at_most_five_pins_and_group_mute_is_dnd(make_client: MakeClient) -> None:
    alice = await make_client()
    others = [await make_client(connect=False) for _ in range(6)]
    await friends(alice, *others)
    for other in others[:5]:
        await alice.api("PATCH", f"/api/v1/conversations/{private_conv(alice.user_id, other.user_id)}/prefs", {"pinned": True})
    with pytest.raises(ApiError) as sixth:
        await alice.api("PATCH", f"/api/v1/conversations/{private_conv(alice.user_id, others[5].user_id)}/prefs", {"pinned": True})
    assert sixth.value.code == "conflict"
    group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [others[0].user_id]})
    await alice.api("PATCH", f"/api/v1/conversations/{group['conv']}/prefs", {"muted": True})
    me = (await alice.api("GET", f"/api/v1/groups/{group['id']}"))["me"]
    assert me["dnd"] is True
    await alice.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"dnd": False})  # the other way round
    prefs = {p["conv"]: p for p in (await alice.api("GET", "/api/v1/me/chat_prefs"))["prefs"]}
    assert group["conv"] not in prefs or prefs[group["conv"]]["muted"] is False
    await alice.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"dnd": True})
    prefs = {p["conv"]: p for p in (await alice.api("GET", "/api/v1/me/chat_prefs"))["prefs"]}
    assert prefs[group["conv"]]["muted"] is True


# -- group read counts ----------------------------------------------------------------------------------
async def test_group_read_counts_are_pushed_to_the_sender(make_client: MakeClient) -> None:
    alice = await make_client()
    bob = await make_client()
    carol = await make_client()
    await friends(alice, bob, carol)
    group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [bob.user_id, carol.user_id]})
    ack = await alice.send_text("read me", conv=group["conv"])
    await bob.request({"type": "read", "conv": group["conv"], "seq": ack["seq"]})
    pushed = await alice.next_event(
        "receipts", where=lambda r: any(c["seq"] == ack["seq"] and c["read"] == 1 for c in r["counts"])
    )
    assert pushed["conv"] == group["conv"]
    assert [c for c in pushed["counts"] if c["seq"] == ack["seq"]] == [{"seq": ack["seq"], "read": 1, "total": 2}]
    await carol.request({"type": "read", "conv": group["conv"], "seq": ack["seq"]})
    both = await alice.next_event("receipts", where=lambda r: any(c["read"] == 2 for c in r["counts"]))
    assert {"seq": ack["seq"], "read": 2, "total": 2} in both["counts"]
    await no_event(bob, "receipts")  # only senders hear of their own messages' counts


async def test_no_read_count_pushes_in_hot_groups(make_client: MakeClient) -> None:
    alice = await make_client()
    bob = await make_client()
    await friends(alice, bob)
    group = await alice.api("POST", "/api/v1/groups", {"name": "g", "members": [bob.user_id]})
    await alice.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
    ack = await alice.send_text("read me", conv=group["conv"])
    await bob.request({"type": "read", "conv": group["conv"], "seq": ack["seq"]})
    await no_event(alice, "receipts", 0.5)


# -- sessions and password --------------------------------------------------------------------------------
async def test_sessions_list_and_logging_out_the_others(make_client: MakeClient, another: Any) -> None:
    alice = await make_client(device="a")
    phone = await another(alice, "b")
    listed = (await alice.api("GET", "/api/v1/me/sessions"))["sessions"]
    assert len(listed) == 2 and sum(s["current"] for s in listed) == 1
    ended = await alice.api("POST", "/api/v1/me/sessions/logout_others")
    assert ended == {"ended": 1}
    await closed_with(phone, Close.REVOKED)
    assert [s["current"] for s in (await alice.api("GET", "/api/v1/me/sessions"))["sessions"]] == [True]
    with pytest.raises(ApiError) as unknown:
        await alice.api("DELETE", "/api/v1/me/sessions/nope")
    assert unknown.value.code == "not_found"


async def test_password_change_may_keep_the_other_sessions(make_client: MakeClient, another: Any) -> None:
    alice = await make_client(device="a")
    phone = await another(alice, "b")
    new = "another-horse-battery-9"
    await alice.api("POST", "/api/v1/auth/password", {"old_password": PASSWORD, "new_password": new, "logout_others": False})
    await phone.request({"type": "ping"})
    assert phone.close_code is None
    listed = (await alice.api("GET", "/api/v1/me/sessions"))["sessions"]
    sid = next(s["id"] for s in listed if not s["current"])
    await alice.api("DELETE", f"/api/v1/me/sessions/{sid}")
    await closed_with(phone, Close.REVOKED)
