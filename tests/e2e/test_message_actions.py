"""Message actions end to end through real sockets on one node (docs/protocol.md, "Message actions"): reply,
edit, reactions, pins, forward, delete for me, typing in groups; each with its refusals."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from hubbub.client import ApiError, HubbubClient
from tests.conftest import friends
from tests.e2e.test_media import fetch, png, upload


async def refused(awaitable: Any) -> str:
    with pytest.raises(ApiError) as info:
        await awaitable
    return info.value.code


def aid() -> str:
    return uuid.uuid4().hex


async def pair(make_client: Any) -> tuple[HubbubClient, HubbubClient, str]:
    a, b = await make_client(), await make_client()
    await friends(a, b)
    conv = f"p:{min(a.user_id, b.user_id)}:{max(a.user_id, b.user_id)}"
    return a, b, conv


async def group_of(owner: HubbubClient, members: list[HubbubClient], **fields: Any) -> tuple[int, str]:
    made = await owner.api(
        "POST", "/api/v1/groups", {"name": "team", "members": [m.user_id for m in members]}
    )
    if fields:
        await owner.api("PATCH", f"/api/v1/groups/{made['id']}", fields)
    return made["id"], made["conv"]


async def event_of(client: HubbubClient, kind: str) -> dict[str, Any]:
    return (await client.next_event("msg", where=lambda f: f["msg"]["type"] == kind))["msg"]


async def current(client: HubbubClient, conv: str, seq: int) -> dict[str, Any]:
    page = await client.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=seq - 1, limit=1)
    return page["messages"][0]


async def test_reply_carries_a_snapshot_and_bad_references_are_refused(make_client: Any) -> None:
    a, b, conv = await pair(make_client)
    first = await a.send_text("the original question, which is rather long " * 5, conv=conv)
    ack = await b.send(
        {"msg_type": "text", "body": {"text": "an answer", "reply": {"seq": first["seq"]}}}, conv=conv
    )
    got = await event_of(a, "text")
    assert got["seq"] == ack["seq"]
    reply = got["body"]["reply"]
    assert reply["seq"] == first["seq"] and reply["sender"] == a.user_id and reply["type"] == "text"
    assert reply["text"] == ("the original question, which is rather long " * 5)[:100]
    bad = {"msg_type": "text", "body": {"text": "x", "reply": {"seq": 99}}}
    assert await refused(b.send(bad, conv=conv, timeout=3)) == "reply_invalid"
    # A server-only key in a send body is refused.
    forged = {"msg_type": "text", "body": {"text": "x", "edited": 1}}
    assert await refused(b.send(forged, conv=conv, timeout=3)) == "invalid_field"
    # Outside the member's window: a late joiner cannot reply to what came before they joined.
    owner, early, late = await make_client(), await make_client(), await make_client()
    await friends(owner, early, late)
    gid, gconv = await group_of(owner, [early])
    before = await owner.send_text("before late joined", conv=gconv)
    await owner.api("POST", f"/api/v1/groups/{gid}/members", {"users": [late.user_id]})
    old = {"msg_type": "text", "body": {"text": "re", "reply": {"seq": before["seq"]}}}
    assert await refused(late.send(old, conv=gconv, timeout=3)) == "reply_invalid"
    notice = {"msg_type": "text", "body": {"text": "re", "reply": {"seq": 1}}}  # seq 1: the "created" notice
    assert await refused(early.send(notice, conv=gconv, timeout=3)) == "reply_invalid"


async def test_edit_is_an_event_history_is_kept_and_rules_apply(make_client: Any) -> None:
    a, b, conv = await pair(make_client)
    sent = await a.send_text("helo", conv=conv)
    await event_of(b, "text")
    action = aid()
    reply = await a.request(
        {"type": "edit", "aid": action, "conv": conv, "seq": sent["seq"], "text": "hello"}
    )
    assert reply["type"] == "ok"
    edit = await event_of(b, "edit")
    assert edit["body"]["seq"] == sent["seq"] and edit["body"]["text"] == "hello" and edit["body"]["edited"]
    assert b.history(conv)[0]["body"]["text"] == "hello"  # the SDK applied the event to what it holds
    message = await current(b, conv, sent["seq"])
    assert message["body"]["text"] == "hello" and message["body"]["edited"] == edit["body"]["edited"]
    # A retry with the same aid: the same event, no second one.
    path = f"/api/v1/conversations/{conv}/messages/{sent['seq']}"
    again = await a.api("POST", f"{path}/edit", {"aid": action, "text": "hello"})
    assert again["seq"] == edit["seq"]
    await a.api("POST", f"{path}/edit", {"aid": aid(), "text": "hello, world"})
    history = await b.api("GET", f"{path}/edits")
    assert [v["text"] for v in history["edits"]] == ["helo", "hello", "hello, world"]
    # Refusals, each leaving the message as it is.
    assert await refused(b.api("POST", f"{path}/edit", {"aid": aid(), "text": "mine now"})) == "forbidden"
    too_long = "x" * 4001
    assert await refused(a.api("POST", f"{path}/edit", {"aid": aid(), "text": too_long})) == "too_large"
    assert await refused(a.api("POST", f"{path}/edit", {"aid": aid(), "text": "  "})) == "invalid_field"
    assert await refused(a.api("POST", f"{path}/edit", {"aid": "~x", "text": "y"})) == "invalid_field"
    up = await upload(a, "image", png(), "p.png")
    image = await a.send({"msg_type": "image", "body": {"upload": up["upload"]}}, conv=conv)
    image_path = f"/api/v1/conversations/{conv}/messages/{image['seq']}/edit"
    assert await refused(a.api("POST", image_path, {"aid": aid(), "text": "caption"})) == "not_editable"
    missing = f"/api/v1/conversations/{conv}/messages/999/edit"
    assert await refused(a.api("POST", missing, {"aid": aid(), "text": "y"})) == "not_found"
    assert (await current(b, conv, sent["seq"]))["body"]["text"] == "hello, world"
    # Edit events are not unread.
    convs = {c["conv"]: c for c in await b.sync()}
    assert convs[conv]["unread"] == 2


async def test_edit_window_expires(make_node: Any, tmp_path: Any) -> None:
    from hubbub.client import HubbubClient as Client
    from tests.conftest import PASSWORD, base_url

    node = await make_node(edit_window_s=1)
    a, b = Client(base_url(node)), Client(base_url(node))
    try:
        for i, c in enumerate((a, b)):
            await c.register(f"window{i}", PASSWORD)
            await c.connect()
        await friends(a, b)
        conv = f"p:{min(a.user_id, b.user_id)}:{max(a.user_id, b.user_id)}"
        sent = await a.send_text("quick", conv=conv)
        await asyncio.sleep(1.2)
        path = f"/api/v1/conversations/{conv}/messages/{sent['seq']}/edit"
        assert await refused(a.api("POST", path, {"aid": aid(), "text": "late"})) == "edit_expired"
    finally:
        await a.close()
        await b.close()


async def test_an_edit_that_adds_a_mention_notifies(make_client: Any) -> None:
    owner, a, b = await make_client(), await make_client(), await make_client()
    await friends(owner, a, b)
    _, conv = await group_of(owner, [a, b])
    sent = await a.send_text("who can help?", conv=conv)
    await b.sync()
    await a.request(
        {
            "type": "edit",
            "aid": aid(),
            "conv": conv,
            "seq": sent["seq"],
            "text": "@b can you?",
            "mentions": [b.user_id],
        }
    )
    edit = await event_of(b, "edit")
    assert edit["body"]["mentions"] == [b.user_id]
    convs = {c["conv"]: c for c in await b.sync()}
    assert convs[conv]["mention"] is True


async def test_reactions_aggregate_are_idempotent_and_bounded(make_client: Any) -> None:
    a, b, conv = await pair(make_client)
    sent = await a.send_text("vote", conv=conv)
    path = f"/api/v1/conversations/{conv}/messages/{sent['seq']}/reactions"
    first = await b.api("POST", path, {"emoji": "👍"})
    assert first["reactions"] == [{"emoji": "👍", "count": 1, "users": [b.user_id]}]
    assert first["event"]["type"] == "reaction"
    event = await event_of(a, "reaction")
    assert event["body"] == {"seq": sent["seq"], "emoji": "👍", "on": True, "count": 1}
    assert a.history(conv)[0]["body"]["reactions"][0]["count"] == 1
    twice = await b.api("POST", path, {"emoji": "👍"})
    assert twice["event"] is None and twice["reactions"][0]["count"] == 1
    await a.request({"type": "react", "conv": conv, "seq": sent["seq"], "emoji": "👍"})
    who = await a.api("GET", path, emoji="👍")
    assert who["users"] == sorted([a.user_id, b.user_id]) and who["next_after"] is None
    assert await refused(b.api("POST", path, {"emoji": "not an emoji"})) == "reaction_invalid"
    assert await refused(b.api("POST", path, {"emoji": "👍👍"})) == "reaction_invalid"
    frame = {"type": "react", "conv": conv, "seq": sent["seq"], "emoji": "x"}
    assert await refused(b.request(frame)) == "reaction_invalid"
    off = await b.api("POST", path, {"emoji": "👍", "on": False})
    assert off["reactions"] == [{"emoji": "👍", "count": 1, "users": [a.user_id]}]
    stranger = await make_client()
    assert await refused(stranger.api("POST", path, {"emoji": "👍"})) == "forbidden"


async def test_reaction_limit(make_node: Any) -> None:
    from tests.conftest import PASSWORD, base_url

    node = await make_node(max_reactions=2)
    a = HubbubClient(base_url(node))
    b = HubbubClient(base_url(node))
    try:
        await a.register("limit_a", PASSWORD)
        await b.register("limit_b", PASSWORD)
        await friends(a, b)
        await a.connect()
        conv = f"p:{min(a.user_id, b.user_id)}:{max(a.user_id, b.user_id)}"
        sent = await a.send_text("react to me", conv=conv)
        path = f"/api/v1/conversations/{conv}/messages/{sent['seq']}/reactions"
        await a.api("POST", path, {"emoji": "👍"})
        await b.api("POST", path, {"emoji": "🎉"})
        assert await refused(b.api("POST", path, {"emoji": "🔥"})) == "reaction_limit"
        await b.api("POST", path, {"emoji": "👍"})  # an emoji already there is fine
        message = await current(a, conv, sent["seq"])
        assert [(r["emoji"], r["count"]) for r in message["body"]["reactions"]] == [("👍", 2), ("🎉", 1)]
    finally:
        await a.close()
        await b.close()


async def test_pins_follow_roles_and_policy(make_client: Any) -> None:
    owner, member = await make_client(), await make_client()
    await friends(owner, member)
    gid, conv = await group_of(owner, [member])
    said = await member.send_text("pin me", conv=conv)
    path = f"/api/v1/conversations/{conv}/messages/{said['seq']}/pin"
    assert await refused(member.api("POST", path, {})) == "forbidden"
    assert await refused(member.request({"type": "pin", "conv": conv, "seq": said["seq"]})) == "forbidden"
    done = await owner.api("POST", path, {})
    assert done["pinned"] is True and done["event"]["type"] == "pin"
    notice = await event_of(member, "pin")
    assert notice["body"] == {"seq": said["seq"], "on": True} and notice["sender"] == owner.user_id
    again = await owner.api("POST", path, {"on": True})
    assert again["event"] is None
    pins = await member.api("GET", f"/api/v1/conversations/{conv}/pins")
    assert [(p["seq"], p["by"], p["message"]["body"]["text"]) for p in pins["pins"]] == [
        (said["seq"], owner.user_id, "pin me")
    ]
    group = await owner.api("PATCH", f"/api/v1/groups/{gid}", {"pin_policy": "members"})
    assert group["pin_policy"] == "members"
    await member.api("POST", path, {"on": False})
    assert (await member.api("GET", f"/api/v1/conversations/{conv}/pins"))["pins"] == []
    # Private: either side.
    a, b, pconv = await pair(make_client)
    sent = await a.send_text("ours", conv=pconv)
    await b.api("POST", f"/api/v1/conversations/{pconv}/messages/{sent['seq']}/pin", {})
    assert len((await a.api("GET", f"/api/v1/conversations/{pconv}/pins"))["pins"]) == 1


async def test_forward_to_several_conversations_media_without_reupload(make_client: Any) -> None:
    a, b, conv = await pair(make_client)
    c = await make_client()
    await friends(a, c)
    other = f"p:{min(a.user_id, c.user_id)}:{max(a.user_id, c.user_id)}"
    text = await b.send_text("worth sharing", conv=conv)
    up = await upload(b, "image", png(), "pic.png")
    image = await b.send({"msg_type": "image", "body": {"upload": up["upload"]}}, conv=conv)
    assert (await fetch(c, f"/api/v1/uploads/{up['upload']}"))[0] == 404  # c could not read it before
    owner_group_id, gconv = await group_of(a, [c])
    action = aid()
    body = {
        "aid": action,
        "items": [{"conv": conv, "seq": text["seq"]}, {"conv": conv, "seq": image["seq"]}],
        "targets": [other, gconv],
        "show_sender": True,
    }
    result = await a.api("POST", "/api/v1/messages/forward", body)
    assert [ack["conv"] for ack in result["acks"]] == [other, other, gconv, gconv]
    got = await event_of(c, "text")
    assert got["body"]["text"] == "worth sharing" and got["body"]["forward"]["sender"] == b.user_id
    pic = await event_of(c, "image")
    assert pic["body"]["upload"] == up["upload"] and "forward" in pic["body"]
    assert (await fetch(c, f"/api/v1/uploads/{up['upload']}"))[0] == 200  # readable, not re-uploaded
    # A retry: the same acks, nothing stored twice.
    again = await a.api("POST", "/api/v1/messages/forward", body)
    assert again["acks"] == result["acks"]
    # Over WebSocket, without the original sender.
    frame = {
        "type": "forward",
        "aid": aid(),
        "items": [{"conv": conv, "seq": text["seq"]}],
        "targets": [other],
    }
    reply = await a.request(frame)
    assert reply["type"] == "forwarded" and len(reply["acks"]) == 1
    seq = reply["acks"][0]["seq"]
    plain = await c.next_event("msg", where=lambda f: f["msg"]["conv"] == other and f["msg"]["seq"] == seq)
    assert "sender" not in plain["msg"]["body"]["forward"]
    # Refusals: nothing stored in any target.
    stranger = await make_client()
    sconv = f"p:{min(a.user_id, stranger.user_id)}:{max(a.user_id, stranger.user_id)}"
    before = (await a.api("GET", f"/api/v1/conversations/{other}/messages"))["messages"]
    bad = {**body, "aid": aid(), "targets": [other, sconv]}
    assert await refused(a.api("POST", "/api/v1/messages/forward", bad)) == "not_friends"
    after = (await a.api("GET", f"/api/v1/conversations/{other}/messages"))["messages"]
    assert len(after) == len(before)
    many = {**body, "aid": aid(), "targets": [f"g:{n}" for n in range(1, 12)]}
    assert await refused(a.api("POST", "/api/v1/messages/forward", many)) == "invalid_field"
    unreadable = {**body, "aid": aid(), "items": [{"conv": conv, "seq": text["seq"]}], "targets": [other]}
    assert await refused(c.api("POST", "/api/v1/messages/forward", unreadable)) == "forbidden"
    assert owner_group_id > 0


async def test_delete_for_me_hides_on_all_my_terminals_only(make_client: Any, node: Any) -> None:
    a, b, conv = await pair(make_client)
    phone = HubbubClient(a.base_url, terminal="mobile")
    try:
        await phone.login(a.user["username"], "correct-horse-battery")
        await phone.connect()
        sent = [await b.send_text(f"m{i}", conv=conv) for i in range(3)]
        await phone.wait_until(lambda: len(phone.history(conv)) == 3)
        reply = await a.request({"type": "hide", "conv": conv, "seqs": [sent[1]["seq"]]})
        assert reply["type"] == "ok"
        pushed = await phone.next_event("hidden")
        assert pushed["seqs"] == [sent[1]["seq"]]
        assert phone.history(conv)[1]["body"] == {"hidden": True}
        mine = (await a.api("GET", f"/api/v1/conversations/{conv}/messages"))["messages"]
        assert [m["body"] for m in mine][1] == {"hidden": True}
        theirs = (await b.api("GET", f"/api/v1/conversations/{conv}/messages"))["messages"]
        assert theirs[1]["body"] == {"text": "m1"}
        assert (await a.api("GET", f"/api/v1/conversations/{conv}/hidden"))["seqs"] == [sent[1]["seq"]]
        # A terminal that was offline gets the masked message from sync.
        fresh = HubbubClient(a.base_url, terminal="desktop")
        await fresh.login(a.user["username"], "correct-horse-battery")
        await fresh.connect()
        assert fresh.history(conv)[1]["body"] == {"hidden": True}
        await fresh.close()
        stranger = await make_client()
        path = f"/api/v1/conversations/{conv}/hide"
        assert await refused(stranger.api("POST", path, {"seqs": [1]})) == "forbidden"
    finally:
        await phone.close()


async def test_typing_in_small_groups_only_coalesced(make_client: Any) -> None:
    owner, a, b = await make_client(), await make_client(), await make_client()
    await friends(owner, a, b)
    gid, conv = await group_of(owner, [a, b])
    await a._ws.send_json({"type": "typing", "conv": conv})  # type: ignore[union-attr]
    for member in (owner, b):
        got = await member.next_event("typing")
        assert got == {"type": "typing", "conv": conv, "user": a.user_id}
    await a._ws.send_json({"type": "typing", "conv": conv})  # type: ignore[union-attr]
    with pytest.raises(asyncio.TimeoutError):
        await b.next_event("typing", timeout=0.5)  # within the interval: dropped
    await owner.api("PATCH", f"/api/v1/groups/{gid}", {"hot": True})
    await b._ws.send_json({"type": "typing", "conv": conv})  # type: ignore[union-attr]
    error = await b.next_event("error")
    assert error["code"] == "forbidden"


async def test_reactions_in_a_hot_group_ride_push_pull(make_client: Any) -> None:
    owner, a = await make_client(), await make_client()
    await friends(owner, a)
    _, conv = await group_of(owner, [a], hot=True)
    said = await owner.send_text("hot take", conv=conv)
    await a.wait_until(lambda: any(m["seq"] == said["seq"] for m in a.history(conv)))
    while not a.events.empty():
        a.events.get_nowait()
    await owner.request({"type": "react", "conv": conv, "seq": said["seq"], "emoji": "🔥"})
    news = await a.next_event("news", where=lambda f: f["conv"] == conv)
    assert news["seq"] == said["seq"] + 1
    await a.wait_until(
        lambda: "reactions" in next(m for m in a.history(conv) if m["seq"] == said["seq"])["body"]
    )
    pulled = await a.request({"type": "pull", "conv": conv, "after_seq": said["seq"] - 1})
    assert pulled["messages"][0]["body"]["reactions"][0]["count"] == 1  # the cache serves the current body
    assert not any(f["type"] == "msg" and f["msg"]["type"] == "reaction" for f in list(a.events._queue))  # type: ignore[attr-defined]


async def test_search_finds_the_edited_text_not_the_old(make_client: Any) -> None:
    a, b, conv = await pair(make_client)
    sent = await a.send_text("meeting at noon in the lobby", conv=conv)

    async def found(word: str) -> list[int]:
        results = (await b.api("GET", "/api/v1/search", q=word, conv=conv))["results"]
        return [r["message"]["seq"] for r in results]

    for _ in range(100):
        if await found("lobby"):
            break
        await asyncio.sleep(0.1)
    assert await found("lobby") == [sent["seq"]]
    await a.api(
        "POST",
        f"/api/v1/conversations/{conv}/messages/{sent['seq']}/edit",
        {"aid": aid(), "text": "meeting at noon in the garden"},
    )
    assert await found("lobby") == []  # re-indexed at once, in the edit's own path
    assert await found("garden") == [sent["seq"]]
    await b.api("POST", f"/api/v1/conversations/{conv}/hide", {"seqs": [sent["seq"]]})
    assert await found("garden") == []  # deleted for me: not found by me
    assert [r["message"]["seq"] for r in (await a.api("GET", "/api/v1/search", q="garden"))["results"]] == [
        sent["seq"]
    ]
