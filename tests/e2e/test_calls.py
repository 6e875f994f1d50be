"""1:1 calls through real sockets on one node: signalling, several devices, records, bad input (issue 18).

The flows here are shared with the 2-node cluster test (tests/cluster/test_calls.py), which runs them with
caller and callee on different nodes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from hubbub.client import ApiError, HubbubClient
from hubbub.core.convs import private_conv
from hubbub.node import Node
from hubbub.services.calls.machine import MAX_SDP_CHARS
from tests.conftest import PASSWORD, base_url, friends

RING_S = 1.5
RECONNECT_S = 1.0


@pytest.fixture
async def node(make_node: Callable[..., Awaitable[Node]]) -> Node:
    return await make_node(
        call_ring_timeout_s=RING_S,
        call_reconnect_s=RECONNECT_S,
        call_invite_burst=6,
        call_turn_urls="turn:127.0.0.1:3478",
        call_turn_secret="turn-secret",
        call_stun_urls="stun:127.0.0.1:3478",
    )


async def no_event(client: HubbubClient, kind: str, wait: float = 0.3) -> None:
    """Nothing of ``kind`` arrives within ``wait`` seconds."""
    with pytest.raises(TimeoutError):
        await client.next_event(kind, timeout=wait)


async def records(client: HubbubClient, conv: str) -> list[dict[str, Any]]:
    page = await client.request({"type": "pull", "conv": conv, "after_seq": 0})
    return [m["body"] for m in page["messages"] if m["type"] == "call"]


async def full_call(alice: HubbubClient, bob_web: HubbubClient, bob_phone: HubbubClient) -> None:
    """Alice calls Bob, who has two devices: both ring, the web one answers, SDP and ICE flow only between
    the two devices in the call, renegotiation works, Alice hangs up, and the record says how long it was."""
    invited = await alice.request({"type": "call_invite", "to": bob_web.user_id, "media": "video"})
    call = invited["call"]
    assert (call["caller"], call["callee"], call["media"], call["state"]) == (
        alice.user_id,
        bob_web.user_id,
        "video",
        "ringing",
    )
    cid = call["id"]
    for device in (bob_web, bob_phone):
        incoming = await device.next_event("call_incoming")
        assert incoming["call"]["id"] == cid and incoming["call"]["caller"] == alice.user_id
    await bob_phone.request({"type": "call_ring", "call": cid})
    assert (await alice.next_event("call_ringing"))["call"] == cid
    await bob_web.request({"type": "call_accept", "call": cid})
    assert (await alice.next_event("call_accepted"))["call"] == cid
    elsewhere = await bob_phone.next_event("call_ended")
    assert elsewhere == {"type": "call_ended", "call": cid, "reason": "answered_elsewhere"}
    # The phone lost: it can neither accept nor signal.
    with pytest.raises(ApiError) as exc:
        await bob_phone.request({"type": "call_accept", "call": cid})
    assert exc.value.code == "conflict"
    with pytest.raises(ApiError) as exc:
        await bob_phone.request({"type": "call_sdp", "call": cid, "kind": "answer", "sdp": "v=0"})
    assert exc.value.code == "forbidden"

    await alice.request({"type": "call_sdp", "call": cid, "kind": "offer", "sdp": "v=0 offer"})
    offer = await bob_web.next_event("call_sdp")
    assert (offer["call"], offer["kind"], offer["sdp"]) == (cid, "offer", "v=0 offer")
    await bob_web.request({"type": "call_sdp", "call": cid, "kind": "answer", "sdp": "v=0 answer"})
    assert (await alice.next_event("call_sdp"))["sdp"] == "v=0 answer"
    candidate = {"candidate": "candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host", "sdpMid": "0"}
    await alice.request({"type": "call_ice", "call": cid, "candidate": candidate})
    assert (await bob_web.next_event("call_ice"))["candidate"] == candidate
    await bob_web.request({"type": "call_ice", "call": cid, "candidate": None})  # end of candidates
    assert "candidate" not in await alice.next_event("call_ice")
    # Renegotiation (the callee turns the camera on): a new offer from the other side.
    await bob_web.request({"type": "call_sdp", "call": cid, "kind": "offer", "sdp": "v=0 reoffer"})
    assert (await alice.next_event("call_sdp"))["kind"] == "offer"
    await no_event(bob_phone, "call_sdp", 0.2)

    await asyncio.sleep(0.05)
    await alice.request({"type": "call_hangup", "call": cid})
    for device in (alice, bob_web, bob_phone):
        ended = await device.next_event("call_ended", where=lambda f: f["reason"] == "hangup")
        assert ended["by"] == alice.user_id and ended["duration_ms"] >= 50
    conv = private_conv(alice.user_id, bob_web.user_id)
    for device in (alice, bob_phone):
        msg = (await device.next_event("msg", where=lambda f: f["msg"]["type"] == "call"))["msg"]
        assert msg["sender"] == alice.user_id and msg["body"]["kind"] == "completed"
    [record] = await records(bob_web, conv)
    assert record["media"] == "video" and record["call"] == cid and record["duration_ms"] >= 50
    with pytest.raises(ApiError) as exc:
        await bob_web.request({"type": "call_hangup", "call": cid})
    assert exc.value.code == "not_found"


async def test_a_video_call_between_two_devices_of_the_callee(make_client):
    alice = await make_client("ca_alice")
    bob_web = await make_client("ca_bob")
    bob_phone = await make_client("ca_bob", register=False, terminal="mobile")
    await friends(alice, bob_web)
    await full_call(alice, bob_web, bob_phone)
    # Both are free again: a second call can be placed at once.
    again = await bob_web.request({"type": "call_invite", "to": alice.user_id, "media": "audio"})
    await alice.next_event("call_incoming")
    await alice.request({"type": "call_reject", "call": again["call"]["id"]})
    ended = await bob_web.next_event("call_ended", where=lambda f: f["call"] == again["call"]["id"])
    assert ended["reason"] == "declined"


async def test_unanswered_call_is_missed_and_an_offline_callee_finds_it_by_sync(make_client):
    alice = await make_client("cm_alice")
    bob = await make_client("cm_bob", connect=False)
    await friends(alice, bob)
    invited = await alice.request({"type": "call_invite", "to": bob.user_id, "media": "audio"})
    ended = await alice.next_event("call_ended", timeout=RING_S + 5)
    assert (ended["call"], ended["reason"]) == (invited["call"]["id"], "timeout")
    await bob.connect()
    conv = private_conv(alice.user_id, bob.user_id)
    conversation = next(c for c in bob.conversations.values() if c["conv"] == conv)
    assert conversation["last"]["type"] == "call" and conversation["last"]["body"]["kind"] == "missed"
    assert conversation["unread"] == 1  # a missed call is news for the callee
    assert [r["kind"] for r in await records(bob, conv)] == ["missed"]
    # Records are the server's: a client cannot forge one.
    with pytest.raises(ApiError) as exc:
        await bob.send(
            {"msg_type": "call", "body": {"kind": "completed", "duration_ms": 1}}, to=alice.user_id
        )
    assert exc.value.code == "invalid_field"


async def test_cancel_and_decline_leave_their_records(make_client):
    alice = await make_client("cc_alice")
    bob = await make_client("cc_bob")
    await friends(alice, bob)
    first = await alice.request({"type": "call_invite", "to": bob.user_id})
    await bob.next_event("call_incoming")
    await alice.request({"type": "call_cancel", "call": first["call"]["id"]})
    assert (await bob.next_event("call_ended"))["reason"] == "cancelled"
    second = await alice.request({"type": "call_invite", "to": bob.user_id})
    await bob.next_event("call_incoming")
    await bob.request({"type": "call_hangup", "call": second["call"]["id"]})  # before answering: declines
    ended = await alice.next_event("call_ended", where=lambda f: f["call"] == second["call"]["id"])
    assert ended["reason"] == "declined"
    conv = private_conv(alice.user_id, bob.user_id)
    await asyncio.sleep(0.1)
    assert [r["kind"] for r in await records(alice, conv)] == ["cancelled", "declined"]


async def request_when_back(client: HubbubClient, frame: dict[str, Any]) -> dict[str, Any]:
    """Send ``frame`` once the client has reconnected after a drop."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        try:
            return await client.request(frame, timeout=2)
        except (ConnectionError, TimeoutError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_dropped_device_resumes_and_one_that_stays_away_ends_the_call(make_client):
    alice = await make_client("cr_alice")
    bob = await make_client("cr_bob")
    await friends(alice, bob)
    invited = await alice.request({"type": "call_invite", "to": bob.user_id, "media": "video"})
    cid = invited["call"]["id"]
    await bob.next_event("call_incoming")
    await bob.request({"type": "call_accept", "call": cid})
    await alice.next_event("call_accepted")
    # Bob's network drops; his client reconnects and takes the call along to the new connection.
    await bob.drop_connection()
    await asyncio.sleep(0.1)
    await request_when_back(bob, {"type": "call_resume", "call": cid})
    await alice.request({"type": "call_sdp", "call": cid, "kind": "offer", "sdp": "v=0 ice restart"})
    assert (await bob.next_event("call_sdp"))["sdp"] == "v=0 ice restart"
    await no_event(alice, "call_ended", 0.2)
    # Alice's drops and she does not come back for the call (a closed tab): it ends after the grace.
    await alice.drop_connection()
    ended = await bob.next_event("call_ended", timeout=RECONNECT_S + 5)
    assert (ended["call"], ended["reason"]) == (cid, "lost")
    conv = private_conv(alice.user_id, bob.user_id)
    await asyncio.sleep(0.1)
    assert [r["kind"] for r in await records(bob, conv)] == ["completed"]
    with pytest.raises(ApiError) as exc:
        await request_when_back(alice, {"type": "call_resume", "call": cid})
    assert exc.value.code == "not_found"


async def test_busy(make_client):
    alice = await make_client("cb_alice")
    bob = await make_client("cb_bob")
    carol = await make_client("cb_carol")
    await friends(alice, bob, carol)
    invited = await alice.request({"type": "call_invite", "to": bob.user_id})
    with pytest.raises(ApiError) as exc:
        await carol.request({"type": "call_invite", "to": bob.user_id})
    assert exc.value.code == "busy"
    with pytest.raises(ApiError) as exc:
        await alice.request({"type": "call_invite", "to": carol.user_id})
    assert exc.value.code == "busy"
    await no_event(carol, "call_incoming")
    await alice.request({"type": "call_cancel", "call": invited["call"]["id"]})
    await carol.request({"type": "call_invite", "to": bob.user_id})  # free again


async def test_bad_input_gets_clear_errors_and_leaves_nothing(make_client, node):
    alice = await make_client("cx_alice")
    bob = await make_client("cx_bob")
    stranger = await make_client("cx_stranger")
    await friends(alice, bob)
    for frame, code in (
        ({"type": "call_invite", "to": stranger.user_id}, "not_friends"),
        ({"type": "call_invite", "to": alice.user_id}, "invalid_field"),
        ({"type": "call_invite", "to": 999_999}, "not_found"),
        ({"type": "call_invite", "to": bob.user_id, "media": "hologram"}, "invalid_field"),
        ({"type": "call_accept", "call": "no-such-call"}, "not_found"),
        ({"type": "call_sdp", "call": "x", "kind": "pranswer", "sdp": "v=0"}, "invalid_field"),
    ):
        with pytest.raises(ApiError) as exc:
            await alice.request(frame)
        assert exc.value.code == code, frame
    assert await node.services.calls.current(alice.user_id) is None
    await no_event(stranger, "call_incoming", 0.1)

    invited = await alice.request({"type": "call_invite", "to": bob.user_id, "media": "video"})
    cid = invited["call"]["id"]
    # Someone not in the call learns nothing about it, whatever the frame.
    for kind in ("call_ring", "call_accept", "call_reject", "call_cancel", "call_hangup"):
        with pytest.raises(ApiError) as exc:
            await stranger.request({"type": kind, "call": cid})
        assert exc.value.code == "not_found"
    with pytest.raises(ApiError) as exc:
        await stranger.request({"type": "call_ice", "call": cid, "candidate": {"candidate": ""}})
    assert exc.value.code == "not_found"
    await bob.next_event("call_incoming")
    await bob.request({"type": "call_accept", "call": cid})
    with pytest.raises(ApiError) as exc:
        big = "v=0\r\n" + "a=x\r\n" * (MAX_SDP_CHARS // 5)
        await alice.request({"type": "call_sdp", "call": cid, "kind": "offer", "sdp": big})
    assert exc.value.code == "too_large"
    with pytest.raises(ApiError) as exc:
        await alice.request({"type": "call_ice", "call": cid, "candidate": {"candidate": "c" * 2000}})
    assert exc.value.code == "too_large"
    await no_event(bob, "call_sdp", 0.1)
    await alice.request({"type": "call_hangup", "call": cid})
    await bob.next_event("call_ended")

    # A flood of invites is rate limited, and each refused one leaves nothing.
    codes = []
    for _ in range(12):
        try:
            placed = await alice.request({"type": "call_invite", "to": bob.user_id})
            await alice.request({"type": "call_cancel", "call": placed["call"]["id"]})
            codes.append("ok")
        except ApiError as err:
            codes.append(err.code)
    assert "rate_limited" in codes and codes[0] == "ok"
    assert await node.services.calls.current(alice.user_id) is None
    assert await node.services.calls.current(bob.user_id) is None


async def test_ice_servers_need_a_login_and_carry_per_user_turn_credentials(make_client, node):
    alice = await make_client("ci_alice", connect=False)
    found = await alice.api("GET", "/api/v1/calls/ice")
    stun, turn = found["ice_servers"]
    assert stun == {"urls": ["stun:127.0.0.1:3478"]}
    assert turn["urls"] == ["turn:127.0.0.1:3478"] and turn["username"].endswith(f":{alice.user_id}")
    assert int(turn["username"].split(":")[0]) > 0 and turn["credential"] and found["ttl_s"] > 0
    assert "turn-secret" not in str(found)
    # Nor does the admin's view of the settings show it (alice is the first account: an admin).
    settings = await alice.api("GET", "/api/v1/admin/config")
    assert "turn-secret" not in str(settings) and settings["config"]["call_turn_secret"] != "turn-secret"
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url(node) + "/api/v1/calls/ice") as resp:
            assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"


async def test_sdk_login_of_same_user_on_two_terminals_is_allowed(make_client):
    """Guard for the fixtures above: a second terminal of one user is a second device, not a takeover."""
    web = await make_client("cd_user")
    phone = HubbubClient(web.base_url, terminal="mobile")
    try:
        await phone.login("cd_user", PASSWORD)
        await phone.connect()
        assert phone.user_id == web.user_id
    finally:
        await phone.close()
