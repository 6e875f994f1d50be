"""Group chat end to end with several real clients."""

import asyncio

import pytest

from hubbub.client import ApiError, HubbubClient
from tests.conftest import PASSWORD, base_url, friends


async def make_group(owner, members, name="team"):
    group = await owner.api("POST", "/api/v1/groups", {"name": name, "members": [m.user_id for m in members]})
    return group, group["conv"]


def texts(client, conv):
    return [m["body"].get("text") for m in client.history(conv) if m["type"] == "text"]


async def test_create_send_and_fan_out(make_client):
    owner, a, b = await make_client("g_own"), await make_client("g_a"), await make_client("g_b")
    await friends(owner, a, b)
    group, conv = await make_group(owner, [a, b])
    assert group["owner"] == owner.user_id and group["member_count"] == 3 and conv == f"g:{group['id']}"
    created = (await a.next_event("msg"))["msg"]
    assert created["type"] == "system" and created["body"]["event"] == "created" and created["seq"] == 1

    ack = await a.send_text("hello group", conv=conv)
    assert ack["seq"] == 2
    for member in (owner, b):
        msg = (await member.next_event("msg", where=lambda f: f["msg"]["type"] == "text"))["msg"]
        assert (msg["sender"], msg["body"]["text"]) == (a.user_id, "hello group")

    mine = (await b.api("GET", "/api/v1/groups"))["groups"]
    assert [g["id"] for g in mine] == [group["id"]]
    page = await b.api("GET", f"/api/v1/groups/{group['id']}/members")
    assert {(m["user"]["id"], m["role"]) for m in page["members"]} == {
        (owner.user_id, "owner"),
        (a.user_id, "member"),
        (b.user_id, "member"),
    }
    conversations = {c["conv"]: c for c in await b.sync()}
    assert (
        conversations[conv]["group"] == group["id"] and conversations[conv]["unread"] == 1
    )  # notices do not count


async def test_join_and_leave_boundaries(make_client):
    owner, early, late = (
        await make_client("jb_own"),
        await make_client("jb_early"),
        await make_client("jb_late"),
    )
    await friends(owner, early, late)
    group, conv = await make_group(owner, [early])
    await owner.send_text("before late joined", conv=conv)
    await owner.api("POST", f"/api/v1/groups/{group['id']}/members", {"users": [late.user_id]})
    await owner.send_text("after late joined", conv=conv)
    await late.sync()
    history = late.history(conv)
    assert history[0]["type"] == "system" and history[0]["body"]["event"] == "joined"
    assert texts(late, conv) == ["after late joined"]
    older = await late.request({"type": "history", "conv": conv, "before_seq": history[0]["seq"]})
    assert older["messages"] == []

    # Leaving: no more sends, reads or pushes.
    await late.api("DELETE", f"/api/v1/groups/{group['id']}/members/{late.user_id}")
    await owner.send_text("after late left", conv=conv)
    for frame in ({"type": "pull", "conv": conv, "after_seq": 0}, {"type": "history", "conv": conv}):
        with pytest.raises(ApiError) as refused:
            await late.request(frame)
        assert refused.value.code == "forbidden"
    with pytest.raises(ApiError) as send_refused:
        await late.send_text("still here?", conv=conv)
    assert send_refused.value.code == "forbidden"
    with pytest.raises(ApiError) as profile:
        await late.api("GET", f"/api/v1/groups/{group['id']}")
    assert profile.value.code == "not_found"
    await asyncio.sleep(0.1)
    assert "after late left" not in texts(late, conv)
    await early.sync()
    events = [m["body"]["event"] for m in early.history(conv) if m["type"] == "system"]
    assert events == ["created", "joined", "left"]


async def clients(make_client, *names):
    return [await make_client(n) for n in names]


async def test_roles_kick_mute_and_permissions(make_client):
    owner, admin, m1, m2, outsider = await clients(
        make_client, "km_own", "km_adm", "km_m1", "km_m2", "km_out"
    )
    await friends(owner, admin, m1, m2)
    await owner.befriend(outsider)
    group, conv = await make_group(owner, [admin, m1, m2])
    gid = group["id"]
    await owner.api("PUT", f"/api/v1/groups/{gid}/admins/{admin.user_id}")

    # Plain members cannot moderate.
    for method, path, body in [
        ("DELETE", f"/api/v1/groups/{gid}/members/{m2.user_id}", None),
        ("POST", f"/api/v1/groups/{gid}/mutes", {"user": m2.user_id, "seconds": 60}),
        ("PATCH", f"/api/v1/groups/{gid}", {"notice": "hijack"}),
        ("PUT", f"/api/v1/groups/{gid}/admins/{m1.user_id}", None),
        ("DELETE", f"/api/v1/groups/{gid}", None),
        ("POST", f"/api/v1/groups/{gid}/owner", {"user": m1.user_id}),
        ("POST", f"/api/v1/groups/{gid}/mute_all", {"muted": True}),
    ]:
        with pytest.raises(ApiError) as refused:
            await m1.api(method, path, body)
        assert refused.value.code == "forbidden", path
    # Admins manage members, not the owner nor other admins.
    with pytest.raises(ApiError) as up:
        await admin.api("DELETE", f"/api/v1/groups/{gid}/members/{owner.user_id}")
    assert up.value.code == "forbidden"
    with pytest.raises(ApiError) as appoint:
        await admin.api("PUT", f"/api/v1/groups/{gid}/admins/{m1.user_id}")
    assert appoint.value.code == "forbidden"

    # Mute: the muted member cannot send; others can; unmute restores.
    await admin.api("POST", f"/api/v1/groups/{gid}/mutes", {"user": m1.user_id, "seconds": 600})
    with pytest.raises(ApiError) as muted:
        await m1.send_text("can I talk?", conv=conv)
    assert muted.value.code == "muted"
    await m2.send_text("I can", conv=conv)
    await admin.api("POST", f"/api/v1/groups/{gid}/mutes", {"user": m1.user_id, "seconds": 0})
    await m1.send_text("back", conv=conv)

    # Mute everyone but admins.
    await owner.api("POST", f"/api/v1/groups/{gid}/mute_all", {"muted": True})
    with pytest.raises(ApiError) as all_muted:
        await m2.send_text("hello?", conv=conv)
    assert all_muted.value.code == "muted"
    await admin.send_text("admins may speak", conv=conv)
    await owner.api("POST", f"/api/v1/groups/{gid}/mute_all", {"muted": False})

    # Kick: the kicked member hears of it, then is out.
    await admin.api("DELETE", f"/api/v1/groups/{gid}/members/{m2.user_id}")
    kicked = await m2.next_event("msg", where=lambda f: f["msg"]["body"].get("event") == "kicked")
    assert kicked["msg"]["body"]["users"] == [m2.user_id]
    with pytest.raises(ApiError) as gone:
        await m2.send_text("let me back", conv=conv)
    assert gone.value.code == "forbidden"
    with pytest.raises(ApiError) as kick_again:
        await admin.api("DELETE", f"/api/v1/groups/{gid}/members/{m2.user_id}")
    assert kick_again.value.code == "not_found"

    # Invites: only friends of the inviter, only existing users; admins-only policy.
    with pytest.raises(ApiError) as stranger:
        await m1.api("POST", f"/api/v1/groups/{gid}/members", {"users": [outsider.user_id]})
    assert stranger.value.code == "not_friends"
    with pytest.raises(ApiError) as ghost:
        await owner.api("POST", f"/api/v1/groups/{gid}/members", {"users": [999999]})
    assert ghost.value.code == "not_found"
    await owner.api("PATCH", f"/api/v1/groups/{gid}", {"invite_policy": "admins", "notice": "be nice"})
    with pytest.raises(ApiError) as policy:
        await m1.api("POST", f"/api/v1/groups/{gid}/members", {"users": [admin.user_id]})
    assert policy.value.code == "forbidden"
    profile = await m1.api("GET", f"/api/v1/groups/{gid}")
    assert (profile["notice"], profile["invite_policy"]) == ("be nice", "admins")

    # Ownership moves; the old owner becomes an admin and may then quit.
    with pytest.raises(ApiError) as owner_quits:
        await owner.api("DELETE", f"/api/v1/groups/{gid}/members/{owner.user_id}")
    assert owner_quits.value.code == "forbidden"
    moved = await owner.api("POST", f"/api/v1/groups/{gid}/owner", {"user": admin.user_id})
    assert moved["owner"] == admin.user_id
    await owner.api("DELETE", f"/api/v1/groups/{gid}/members/{owner.user_id}")

    # Every change is a system message in the group's seq, in order.
    await m1.sync()
    events = [m["body"]["event"] for m in m1.history(conv) if m["type"] == "system"]
    assert events == [
        "created",
        "admin_added",
        "muted",
        "unmuted",
        "muted_all",
        "unmuted_all",
        "kicked",
        "edited",
        "owner_changed",
        "left",
    ]
    seqs = [m["seq"] for m in m1.history(conv)]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_dismiss(make_client):
    owner, a = await clients(make_client, "ds_own", "ds_a")
    await friends(owner, a)
    group, conv = await make_group(owner, [a])
    await a.send_text("last words", conv=conv)
    await owner.api("DELETE", f"/api/v1/groups/{group['id']}")
    dismissed = await a.next_event("msg", where=lambda f: f["msg"]["body"].get("event") == "dismissed")
    assert dismissed["msg"]["type"] == "system"
    with pytest.raises(ApiError) as again:
        await owner.api("DELETE", f"/api/v1/groups/{group['id']}")
    assert (again.value.status, again.value.code) == (410, "group_dismissed")
    with pytest.raises(ApiError) as send:
        await a.send_text("anyone?", conv=conv)
    assert send.value.code == "group_dismissed"
    assert (await a.api("GET", f"/api/v1/groups/{group['id']}"))["dismissed"] is True
    await a.sync()
    assert "last words" in texts(a, conv)  # history stays readable


async def test_mentions_and_read_receipts(make_client):
    owner, a, b, c = await clients(make_client, "mn_own", "mn_a", "mn_b", "mn_c")
    await friends(owner, a, b, c)
    group, conv = await make_group(owner, [a, b, c])
    ack = await a.send({"msg_type": "text", "body": {"text": "@b look", "mentions": [b.user_id]}}, conv=conv)
    with pytest.raises(ApiError) as all_by_member:
        await a.send({"msg_type": "text", "body": {"text": "@all", "mention_all": True}}, conv=conv)
    assert all_by_member.value.code == "forbidden"
    listing = {x["conv"]: x for x in await b.sync()}
    assert listing[conv]["mention"] is True
    assert {x["conv"]: x for x in await c.sync()}[conv]["mention"] is False
    await b.request({"type": "read", "conv": conv, "seq": ack["seq"]})
    assert {x["conv"]: x for x in await b.sync()}[conv]["mention"] is False

    everyone = await owner.send(
        {"msg_type": "text", "body": {"text": "@all meeting", "mention_all": True}}, conv=conv
    )
    for member in (a, b, c):
        assert {x["conv"]: x for x in await member.sync()}[conv]["mention"] is True
    assert {x["conv"]: x for x in await owner.sync()}[conv]["mention"] is False

    await a.request({"type": "read", "conv": conv, "seq": everyone["seq"]})
    await c.request({"type": "read", "conv": conv, "seq": everyone["seq"]})
    receipt = await owner.request({"type": "receipts", "conv": conv, "seq": everyone["seq"]})
    assert (receipt["read"], receipt["total"]) == (2, 3)  # the sender is not counted
    assert set(receipt["readers"]) == {a.user_id, c.user_id}
    over_http = await owner.api("GET", f"/api/v1/groups/{group['id']}/messages/{everyone['seq']}/receipts")
    assert over_http["read"] == 2
    with pytest.raises(ApiError):
        await a.request({"type": "receipts", "conv": "p:1:2", "seq": 1})


async def test_admin_recalls_any_member_message(make_client):
    owner, a = await clients(make_client, "rc_own", "rc_a")
    await friends(owner, a)
    group, conv = await make_group(owner, [a])
    ack = await a.send_text("spam", conv=conv)
    with pytest.raises(ApiError) as member_recall:
        await a.request({"type": "recall", "conv": conv, "seq": 1})  # the owner's system message
    assert member_recall.value.code == "not_found"
    await owner.request({"type": "recall", "conv": conv, "seq": ack["seq"]})
    page = await a.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0)
    assert [m["recalled"] for m in page["messages"] if m["seq"] == ack["seq"]] == [True]
    owner_msg = await owner.send_text("owner speaks", conv=conv)
    with pytest.raises(ApiError) as up:
        await a.request({"type": "recall", "conv": conv, "seq": owner_msg["seq"]})
    assert up.value.code == "forbidden"


async def test_offline_member_syncs_a_busy_group(make_client, node):
    owner, a, away = await clients(make_client, "bz_own", "bz_a", "bz_away")
    await friends(owner, a, away)
    group, conv = await make_group(owner, [a, away])
    await away.disconnect()
    await asyncio.gather(
        *(c.send_text(f"{c.user['username']} {i}", conv=conv) for c in (owner, a) for i in range(120))
    )
    await away.connect()
    assert [m["seq"] for m in away.history(conv)] == list(range(1, 242))
    listing = {x["conv"]: x for x in away.conversations.values()}
    assert listing[conv]["unread"] == 240


async def test_concurrent_burst_same_order_for_everyone(make_client):
    members = await clients(make_client, *(f"cb_{i}" for i in range(6)))
    await friends(*members)
    group, conv = await make_group(members[0], members[1:])
    await asyncio.gather(
        *(m.send_text(f"{i}-{k}", conv=conv) for i, m in enumerate(members) for k in range(40))
    )
    for m in members:
        await m.wait_until(lambda m=m: m.convs[conv].have == 241, timeout=15)
    orders = [[x["id"] for x in m.history(conv)] for m in members]
    assert all(order == orders[0] for order in orders)
    assert len(set(orders[0])) == 241


async def test_concurrent_kick_and_send_stay_consistent(make_client):
    owner, victim = await clients(make_client, "ks_own", "ks_v")
    await friends(owner, victim)
    group, conv = await make_group(owner, [victim])
    sends = [asyncio.create_task(victim.send_text(f"s{i}", conv=conv, timeout=5)) for i in range(30)]
    await asyncio.sleep(0.005)
    await owner.api("DELETE", f"/api/v1/groups/{group['id']}/members/{victim.user_id}")
    results = await asyncio.gather(*sends, return_exceptions=True)
    accepted = [r for r in results if isinstance(r, dict)]
    refused = [r for r in results if isinstance(r, ApiError)]
    assert len(accepted) + len(refused) == 30 and all(r.code == "forbidden" for r in refused)
    page = await owner.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0, limit=200)
    kick_seq = next(m["seq"] for m in page["messages"] if m["body"].get("event") == "kicked")
    stored = [m for m in page["messages"] if m["type"] == "text"]
    assert len(stored) == len(accepted)
    assert all(m["seq"] < kick_seq for m in stored)  # nothing from the kicked member after the kick
    assert [m["seq"] for m in page["messages"]] == list(range(1, len(page["messages"]) + 1))


async def test_group_bad_input(make_client, node):
    owner, a = await clients(make_client, "gb_own", "gb_a")
    await friends(owner, a)
    for body, code in [
        ({"name": ""}, "invalid_field"),
        ({"name": "x" * 65}, "invalid_field"),
        ({"name": "ok", "members": ["x"]}, "invalid_field"),
        ({"name": "ok", "members": [999999]}, "not_found"),
        ({}, "invalid_field"),
    ]:
        with pytest.raises(ApiError) as err:
            await owner.api("POST", "/api/v1/groups", body)
        assert err.value.code == code, body
    group, conv = await make_group(owner, [a])
    with pytest.raises(ApiError) as nope:
        await a.api("GET", "/api/v1/groups/424242")
    assert nope.value.code == "not_found"
    with pytest.raises(ApiError) as mentions:
        await a.send({"msg_type": "text", "body": {"text": "x", "mentions": "all"}}, conv=conv)
    assert mentions.value.code == "invalid_field"
    with pytest.raises(ApiError) as bad_mute:
        await owner.api("POST", f"/api/v1/groups/{group['id']}/mutes", {"user": a.user_id, "seconds": -5})
    assert bad_mute.value.code == "invalid_field"
    with pytest.raises(ApiError) as bad_conv:
        await a.send_text("x", conv="g:424242")
    assert bad_conv.value.code == "not_found"
    prefs = await a.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"nickname": "Ace", "dnd": True})
    assert (prefs["nickname"], prefs["dnd"]) == ("Ace", True)


async def test_member_limit(make_node):
    node = await make_node(group_member_limit=3)
    url = base_url(node)
    people = [HubbubClient(url) for _ in range(4)]
    try:
        for i, p in enumerate(people):
            await p.register(f"lim_{i}", PASSWORD)
        await friends(*people)
        with pytest.raises(ApiError) as too_many:
            await people[0].api(
                "POST", "/api/v1/groups", {"name": "big", "members": [p.user_id for p in people[1:]]}
            )
        assert too_many.value.code == "conflict"
        group = await people[0].api("POST", "/api/v1/groups", {"name": "ok", "members": [people[1].user_id]})
        await people[0].api("POST", f"/api/v1/groups/{group['id']}/members", {"users": [people[2].user_id]})
        with pytest.raises(ApiError) as over:
            await people[0].api(
                "POST", f"/api/v1/groups/{group['id']}/members", {"users": [people[3].user_id]}
            )
        assert over.value.code == "conflict"
        assert (await people[0].api("GET", f"/api/v1/groups/{group['id']}"))["member_count"] == 3
    finally:
        for p in people:
            await p.close()


async def test_my_membership_and_member_search(make_client):
    owner, a, b = await clients(make_client, "ms_own", "ms_anna", "ms_bob")
    await friends(owner, a, b)
    group, conv = await make_group(owner, [a, b])
    await owner.api("POST", f"/api/v1/groups/{group['id']}/mutes", {"user": a.user_id, "seconds": 600})
    mine = await a.api("GET", f"/api/v1/groups/{group['id']}")
    assert mine["me"]["role"] == "member" and mine["me"]["muted_until"] > 0
    listed = (await owner.api("GET", "/api/v1/groups"))["groups"]
    assert listed[0]["me"]["role"] == "owner"
    found = await owner.api("GET", f"/api/v1/groups/{group['id']}/members", q="ms_an")
    assert [m["user"]["id"] for m in found["members"]] == [a.user_id]
    with pytest.raises(ApiError) as muted:
        await a.send_text("hi", conv=conv)
    assert muted.value.code == "muted"


async def test_presence_of_group_members_on_request(make_client):
    owner, a, b = await clients(make_client, "op_own", "op_a", "op_b")
    await friends(owner, a, b)
    group, _conv = await make_group(owner, [a, b])
    await b.disconnect()
    page = await owner.api("GET", f"/api/v1/groups/{group['id']}/members/online")
    assert {m["user"] for m in page["online"]} == {owner.user_id, a.user_id}
    assert page["next_after"] is None
    outsider = await make_client("op_out")
    with pytest.raises(ApiError) as refused:
        await outsider.api("GET", f"/api/v1/groups/{group['id']}/members/online")
    assert refused.value.code == "not_found"


async def refused_with(client, method, path, body=None):
    with pytest.raises(ApiError) as refused:
        await client.api(method, path, body)
    return refused.value.status, refused.value.code


async def test_frozen_group_is_read_only(make_client):
    """Issue 12 item 8: nothing members would see changes in a frozen group, recalls included (the message
    stays as it was); reading, read marks, receipts, do-not-disturb and leaving still work."""
    root = await make_client("fr_root")  # the first account is a server admin
    owner, adm, m, extra = await clients(make_client, "fr_own", "fr_adm", "fr_m", "fr_x")
    await friends(owner, adm, m, extra)
    group, conv = await make_group(owner, [adm, m])
    gid = group["id"]
    await owner.api("PUT", f"/api/v1/groups/{gid}/admins/{adm.user_id}")
    mine = await m.send_text("mine", conv=conv)
    theirs = await m.send_text("moderate me", conv=conv)
    owners = await owner.send_text("owner's", conv=conv)
    await root.api("PUT", f"/api/v1/admin/groups/{gid}/freeze")

    recall = f"/api/v1/conversations/{conv}/messages/{{}}/recall"
    for client, method, path, body in [
        (m, "POST", recall.format(mine["seq"]), None),
        (owner, "POST", recall.format(theirs["seq"]), None),
        (m, "POST", recall.format(owners["seq"]), None),  # the state answers before the roles
        (owner, "PATCH", f"/api/v1/groups/{gid}", {"notice": "rewritten"}),
        (owner, "POST", f"/api/v1/groups/{gid}/members", {"users": [extra.user_id]}),
        (owner, "DELETE", f"/api/v1/groups/{gid}/members/{m.user_id}", None),
        (adm, "DELETE", f"/api/v1/groups/{gid}/members/{m.user_id}", None),
        (owner, "POST", f"/api/v1/groups/{gid}/mutes", {"user": m.user_id, "seconds": 60}),
        (owner, "POST", f"/api/v1/groups/{gid}/mute_all", {"muted": True}),
        (owner, "PUT", f"/api/v1/groups/{gid}/admins/{m.user_id}", None),
        (owner, "POST", f"/api/v1/groups/{gid}/owner", {"user": adm.user_id}),
        (owner, "DELETE", f"/api/v1/groups/{gid}", None),
        (m, "PATCH", f"/api/v1/groups/{gid}/me", {"nickname": "new name"}),
    ]:
        assert await refused_with(client, method, path, body) == (403, "group_frozen"), (method, path)
    with pytest.raises(ApiError) as over_ws:
        await m.request({"type": "recall", "conv": conv, "seq": mine["seq"]})
    assert over_ws.value.code == "group_frozen"

    # Nothing changed: no message blanked, no notice stored, same members and profile.
    page = await m.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0)
    texts_now = {x["seq"]: (x["recalled"], x["body"].get("text")) for x in page["messages"]}
    assert texts_now[mine["seq"]] == (False, "mine") and texts_now[theirs["seq"]] == (False, "moderate me")
    assert [x["type"] for x in page["messages"]][-1] == "system"  # the freeze notice is the last thing
    profile = await m.api("GET", f"/api/v1/groups/{gid}")
    assert (profile["member_count"], profile["notice"], profile["frozen"]) == (3, "", True)

    # Still allowed: reading, read marks, receipts, do-not-disturb, and leaving.
    assert (await m.request({"type": "history", "conv": conv}))["messages"]
    await adm.request({"type": "read", "conv": conv, "seq": theirs["seq"]})
    assert (await m.request({"type": "receipts", "conv": conv, "seq": theirs["seq"]}))["read"] == 1
    assert (await m.api("PATCH", f"/api/v1/groups/{gid}/me", {"dnd": True}))["dnd"] is True
    await m.api("DELETE", f"/api/v1/groups/{gid}/members/{m.user_id}")
    assert (await owner.api("GET", f"/api/v1/groups/{gid}"))["member_count"] == 2

    # Unfrozen, the group is writable again; a server admin may also dismiss a frozen group.
    await root.api("DELETE", f"/api/v1/admin/groups/{gid}/freeze")
    assert (await owner.api("PATCH", f"/api/v1/groups/{gid}", {"notice": "back"}))["notice"] == "back"
    await root.api("PUT", f"/api/v1/admin/groups/{gid}/freeze")
    assert (await root.api("DELETE", f"/api/v1/admin/groups/{gid}"))["dismissed"] is True


async def test_dismissed_group_keeps_only_its_history(make_client):
    """Issue 12 item 8: a dismissed group refuses every change (410 group_dismissed), recalls included,
    leaving too; history, read marks, receipts and do-not-disturb remain."""
    owner, adm, m = await clients(make_client, "dg_own", "dg_adm", "dg_m")
    await friends(owner, adm, m)
    group, conv = await make_group(owner, [adm, m])
    gid = group["id"]
    await owner.api("PUT", f"/api/v1/groups/{gid}/admins/{adm.user_id}")
    said = await m.send_text("last words", conv=conv)
    await owner.api("DELETE", f"/api/v1/groups/{gid}")
    recall = f"/api/v1/conversations/{conv}/messages/{said['seq']}/recall"
    for client, method, path, body in [
        (m, "POST", recall, None),
        (owner, "POST", recall, None),
        (m, "DELETE", f"/api/v1/groups/{gid}/members/{m.user_id}", None),
        (adm, "DELETE", f"/api/v1/groups/{gid}/members/{adm.user_id}", None),
        (owner, "DELETE", f"/api/v1/groups/{gid}/members/{m.user_id}", None),
        (owner, "PATCH", f"/api/v1/groups/{gid}", {"name": "again"}),
        (owner, "POST", f"/api/v1/groups/{gid}/owner", {"user": adm.user_id}),
        (adm, "POST", f"/api/v1/groups/{gid}/mutes", {"user": m.user_id, "seconds": 60}),
        (m, "PATCH", f"/api/v1/groups/{gid}/me", {"nickname": "ghost"}),
    ]:
        assert await refused_with(client, method, path, body) == (410, "group_dismissed"), (method, path)
    page = await m.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0)
    last_words = next(x for x in page["messages"] if x["seq"] == said["seq"])
    assert (last_words["recalled"], last_words["body"]) == (False, {"text": "last words"})
    await m.request({"type": "read", "conv": conv, "seq": page["messages"][-1]["seq"]})
    assert (await owner.request({"type": "receipts", "conv": conv, "seq": said["seq"]}))["total"] == 2
    assert (await m.api("PATCH", f"/api/v1/groups/{gid}/me", {"dnd": True}))["dnd"] is True
    assert (await m.api("GET", f"/api/v1/groups/{gid}"))["member_count"] == 3


async def test_receipts_and_unread_stay_in_the_members_window(make_client):
    """Issue 12 item 12: a member who joined later cannot ask receipts for older messages, and is not
    counted as a reader of them; a recalled group message is not unread."""
    owner, early, late = await clients(make_client, "rw_own", "rw_early", "rw_late")
    await friends(owner, early, late)
    group, conv = await make_group(owner, [early])
    old = await owner.send_text("before late joined", conv=conv)
    await early.request({"type": "read", "conv": conv, "seq": old["seq"]})
    await owner.api("POST", f"/api/v1/groups/{group['id']}/members", {"users": [late.user_id]})
    with pytest.raises(ApiError) as over_ws:
        await late.request({"type": "receipts", "conv": conv, "seq": old["seq"]})
    assert over_ws.value.code == "not_found"
    path = f"/api/v1/groups/{group['id']}/messages/{old['seq']}/receipts"
    assert await refused_with(late, "GET", path) == (404, "not_found")
    receipt = await owner.request({"type": "receipts", "conv": conv, "seq": old["seq"]})
    assert (receipt["read"], receipt["total"], receipt["readers"]) == (1, 1, [early.user_id])

    new = await owner.send_text("after", conv=conv)
    assert (await late.request({"type": "receipts", "conv": conv, "seq": new["seq"]}))["total"] == 2
    spam = await owner.send_text("spam", conv=conv)
    assert {c["conv"]: c for c in await late.sync()}[conv]["unread"] == 2
    await owner.request({"type": "recall", "conv": conv, "seq": spam["seq"]})
    assert {c["conv"]: c for c in await late.sync()}[conv]["unread"] == 1


async def test_role_hierarchy_and_mentions_of_non_members(make_client):
    """docs/protocol.md, "Group rules": admins cannot act on the owner or on other admins (kick, mute,
    recall); the owner can; a mention of a non-member is kept in the body and notifies nobody."""
    owner, adm1, adm2, m, outsider = await clients(
        make_client, "rh_own", "rh_adm1", "rh_adm2", "rh_m", "rh_out"
    )
    await friends(owner, adm1, adm2, m)
    await owner.befriend(outsider)
    group, conv = await make_group(owner, [adm1, adm2, m])
    gid = group["id"]
    for adm in (adm1, adm2):
        await owner.api("PUT", f"/api/v1/groups/{gid}/admins/{adm.user_id}")
    said = await adm2.send_text("admin speaks", conv=conv)
    by_owner = await owner.send_text("owner speaks", conv=conv)
    for target, seq in ((adm2, said["seq"]), (owner, by_owner["seq"])):
        assert await refused_with(adm1, "DELETE", f"/api/v1/groups/{gid}/members/{target.user_id}") == (
            403,
            "forbidden",
        )
        body = {"user": target.user_id, "seconds": 60}
        assert await refused_with(adm1, "POST", f"/api/v1/groups/{gid}/mutes", body) == (403, "forbidden")
        with pytest.raises(ApiError) as recall:
            await adm1.request({"type": "recall", "conv": conv, "seq": seq})
        assert recall.value.code == "forbidden"
    await owner.request({"type": "recall", "conv": conv, "seq": said["seq"]})  # the owner outranks admins

    ack = await m.send(
        {"msg_type": "text", "body": {"text": "hi", "mentions": [outsider.user_id, adm1.user_id]}}, conv=conv
    )
    stored = await adm1.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=ack["seq"] - 1)
    assert stored["messages"][0]["body"]["mentions"] == [outsider.user_id, adm1.user_id]
    assert {c["conv"]: c for c in await adm1.sync()}[conv]["mention"] is True
    assert conv not in {c["conv"] for c in await outsider.sync()}
    with pytest.raises(asyncio.TimeoutError):
        await outsider.next_event("msg", timeout=0.3)


async def test_do_not_disturb_delivers_silently_except_mentions(make_client):
    """docs/protocol.md, "Do not disturb": a member with DND gets every message, in pushes and by sync, and
    counts it as unread; pushes are marked ``silent`` unless the message mentions them (or @all)."""
    owner, quiet, loud = await clients(make_client, "dnd_own", "dnd_q", "dnd_l")
    await friends(owner, quiet, loud)
    group, conv = await make_group(owner, [quiet, loud])
    assert (await quiet.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"dnd": True}))["dnd"] is True
    assert (await quiet.api("GET", f"/api/v1/groups/{group['id']}"))["me"]["dnd"] is True
    for viewer, expected in ((quiet, True), (owner, False)):  # nobody else sees it
        page = await viewer.api("GET", f"/api/v1/groups/{group['id']}/members")
        assert next(x["dnd"] for x in page["members"] if x["user"]["id"] == quiet.user_id) is expected

    def text_is(text):
        return lambda f: f["msg"]["body"].get("text") == text

    await owner.send_text("plain", conv=conv)
    assert (await quiet.next_event("msg", where=text_is("plain"))).get("silent") is True
    assert "silent" not in await loud.next_event("msg", where=text_is("plain"))
    await owner.send({"msg_type": "text", "body": {"text": "you", "mentions": [quiet.user_id]}}, conv=conv)
    assert "silent" not in await quiet.next_event("msg", where=text_is("you"))
    await owner.send({"msg_type": "text", "body": {"text": "all", "mention_all": True}}, conv=conv)
    assert "silent" not in await quiet.next_event("msg", where=text_is("all"))

    listing = {c["conv"]: c for c in await quiet.sync()}[conv]
    assert (listing["dnd"], listing["unread"], listing["mention"]) == (True, 3, True)
    assert {c["conv"]: c for c in await loud.sync()}[conv]["dnd"] is False

    await quiet.api("PATCH", f"/api/v1/groups/{group['id']}/me", {"dnd": False})
    await owner.send_text("again", conv=conv)
    assert "silent" not in await quiet.next_event("msg", where=text_is("again"))
