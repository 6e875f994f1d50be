"""Issue 20 over real sockets: registration modes and invites, join links and requests, the public directory,
reports and the admin actions, each rule with its refusal (docs/protocol.md; docs/operations.md)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from hubbub.client import ApiError, ClosedError, HubbubClient
from hubbub.core.clock import now_ms
from hubbub.engines.storage.base_access import GroupLink, Invite
from tests.conftest import PASSWORD, base_url, friends


async def refused(call, code: str, status: int | None = None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        await call
    assert caught.value.code == code, caught.value
    if status is not None:
        assert caught.value.status == status
    return caught.value


async def anonymous(node, name: str, invite: str | None = None) -> HubbubClient:
    client = HubbubClient(base_url(node))
    try:
        await client.register(name, PASSWORD, invite=invite)
    finally:
        await client.close()
    return client


# -- registration -----------------------------------------------------------------------------------
async def test_invite_mode_needs_a_live_invite_and_each_rule_refuses(make_client, node):
    admin = await make_client("inv_admin")  # the first account: the server's admin
    assert (await admin.api("GET", "/api/v1/me/access"))["admin"] is True
    settings = await admin.api("PATCH", "/api/v1/admin/settings", {"registration": "invite"})
    assert settings["registration"] == "invite"
    assert (await admin.api("GET", "/api/v1/server", auth=False))["registration"] == "invite"

    await refused(anonymous(node, "inv_none"), "invite_required", 403)
    error = await refused(anonymous(node, "inv_unknown", "nosuchcode"), "invite_invalid", 403)
    assert "unknown" in error.message

    once = await admin.api("POST", "/api/v1/admin/invites", {"max_uses": 1, "ttl_s": 3600})
    # A taken username uses nothing up: the account and the use are one transaction.
    await refused(anonymous(node, "inv_admin", once["code"]), "username_taken", 409)
    await anonymous(node, "inv_first", once["code"])
    used = await refused(anonymous(node, "inv_second", once["code"]), "invite_invalid")
    assert "used_up" in used.message

    expired = Invite(
        code="expiredcode1", created_by=admin.user_id, max_uses=5, expires_at=now_ms() - 1, created_at=0
    )
    await node.storage.create_invite(expired)
    assert "expired" in (await refused(anonymous(node, "inv_late", "expiredcode1"), "invite_invalid")).message

    revoked = await admin.api("POST", "/api/v1/admin/invites", {"max_uses": 5})
    await admin.api("DELETE", f"/api/v1/admin/invites/{revoked['code']}")
    assert "revoked" in (await refused(anonymous(node, "inv_rev", revoked["code"]), "invite_invalid")).message
    listed = {i["code"]: i for i in (await admin.api("GET", "/api/v1/admin/invites"))["invites"]}
    assert listed[once["code"]]["uses"] == 1 and listed[revoked["code"]]["revoked"] is True


async def test_users_create_invites_only_when_allowed_and_within_the_limit(make_client, node):
    admin = await make_client("uinv_admin")
    user = await make_client("uinv_user")
    await admin.api("PATCH", "/api/v1/admin/settings", {"registration": "invite"})
    await refused(user.api("POST", "/api/v1/invites", {"max_uses": 1}), "forbidden", 403)
    assert (await user.api("GET", "/api/v1/me/access")) == {"admin": False, "can_invite": False}
    await admin.api("PATCH", "/api/v1/admin/settings", {"user_invites": True, "user_invite_max_uses": 2})
    await refused(user.api("POST", "/api/v1/invites", {"max_uses": 3}), "invalid_field", 422)
    invite = await user.api("POST", "/api/v1/invites", {"max_uses": 2, "note": "for a friend"})
    await anonymous(node, "uinv_friend", invite["code"])
    assert [i["uses"] for i in (await user.api("GET", "/api/v1/invites"))["invites"]] == [1]
    await refused(
        admin.api("DELETE", f"/api/v1/invites/{invite['code']}"), "not_found"
    )  # not the admin's own
    await user.api("DELETE", f"/api/v1/invites/{invite['code']}")
    await refused(anonymous(node, "uinv_more", invite["code"]), "invite_invalid")


async def test_closed_mode_admins_create_accounts(make_client, node):
    admin = await make_client("closed_admin")
    await admin.api("PATCH", "/api/v1/admin/settings", {"registration": "closed"})
    invite = await admin.api("POST", "/api/v1/admin/invites", {"max_uses": 5})
    await refused(anonymous(node, "closed_a"), "registration_closed", 403)
    await refused(anonymous(node, "closed_b", invite["code"]), "registration_closed", 403)
    await admin.api("POST", "/api/v1/admin/users", {"username": "closed_c", "password": PASSWORD})
    made = HubbubClient(base_url(node))
    try:
        await made.login("closed_c", PASSWORD)
    finally:
        await made.close()
    await refused(
        admin.api("PATCH", "/api/v1/admin/settings", {"registration": "nobody"}), "invalid_field", 422
    )
    assert (await admin.api("GET", "/api/v1/admin/settings"))[
        "registration"
    ] == "closed"  # nothing half-applied


async def test_a_fresh_closed_server_still_lets_its_first_account_in(make_node):
    node = await make_node(registration="closed")
    url = base_url(node)
    assert (await HubbubClient(url).api("GET", "/api/v1/server", auth=False))["registration"] == "open"
    first = HubbubClient(url)
    try:
        await first.register("fresh_first", PASSWORD)
        assert (await first.api("GET", "/api/v1/me/access"))["admin"] is True
        await refused(anonymous(node, "fresh_second"), "registration_closed")
    finally:
        await first.close()


async def test_open_mode_is_the_default(make_client, node):
    await make_client("open_a")
    await make_client("open_b")
    assert (await HubbubClient(base_url(node)).api("GET", "/api/v1/server", auth=False))[
        "registration"
    ] == "open"


# -- join links -------------------------------------------------------------------------------------
async def _group(owner: HubbubClient, members: list[HubbubClient], **fields):
    group = await owner.api(
        "POST", "/api/v1/groups", {"name": "link club", "members": [m.user_id for m in members]}
    )
    if fields:
        group = await owner.api("PATCH", f"/api/v1/groups/{group['id']}", fields)
    return group


async def test_a_link_opens_the_card_and_joins_with_its_notice(make_client):
    owner, member, joiner = (
        await make_client("lk_own"),
        await make_client("lk_mem"),
        await make_client("lk_join"),
    )
    await friends(owner, member)
    group = await _group(owner, [member], notice="secret notice")
    gid = group["id"]
    await refused(member.api("POST", f"/api/v1/groups/{gid}/links", {}), "forbidden", 403)
    await refused(joiner.api("GET", f"/api/v1/groups/{gid}/links"), "not_found", 404)
    link = await owner.api("POST", f"/api/v1/groups/{gid}/links", {"max_uses": 0, "ttl_s": 3600})
    card = await joiner.api("GET", f"/api/v1/links/{link['code']}")
    assert card["group"]["name"] == "link club" and card["member"] is False
    assert "secret notice" not in json.dumps(card)  # a card is not the group's content
    joined = await joiner.api("POST", f"/api/v1/links/{link['code']}/join")
    assert joined["group"]["id"] == gid and joined["request"] is None
    notice = (await member.next_event("msg", where=lambda f: f["msg"]["body"].get("event") == "joined"))[
        "msg"
    ]
    assert notice["body"]["users"] == [joiner.user_id] and notice["body"]["via"] == "link"
    again = await joiner.api("POST", f"/api/v1/links/{link['code']}/join")  # already in: nothing counted
    assert again["group"]["id"] == gid
    assert [x["uses"] for x in (await owner.api("GET", f"/api/v1/groups/{gid}/links"))["links"]] == [1]
    ack = await joiner.send_text("hi all", conv=group["conv"])
    assert ack["seq"] > 0


async def test_link_rules_used_up_revoked_expired_and_frozen(make_client, node):
    admin = await make_client("lr_admin")
    owner, a, b, c = (
        await make_client("lr_own"),
        await make_client("lr_a"),
        await make_client("lr_b"),
        await make_client("lr_c"),
    )
    group = await _group(owner, [])
    gid = group["id"]
    single = await owner.api("POST", f"/api/v1/groups/{gid}/links", {"max_uses": 1})
    await a.api("POST", f"/api/v1/links/{single['code']}/join")
    assert (
        "used_up"
        in (await refused(b.api("POST", f"/api/v1/links/{single['code']}/join"), "link_invalid", 403)).message
    )
    await refused(b.api("GET", f"/api/v1/links/{single['code']}"), "link_invalid")

    revoked = await owner.api("POST", f"/api/v1/groups/{gid}/links", {})
    await owner.api("DELETE", f"/api/v1/groups/{gid}/links/{revoked['code']}")
    assert (
        "revoked"
        in (await refused(b.api("POST", f"/api/v1/links/{revoked['code']}/join"), "link_invalid")).message
    )

    await node.storage.create_link(
        GroupLink(
            code="oldlink", group_id=gid, created_by=owner.user_id, expires_at=now_ms() - 1, created_at=0
        )
    )
    assert "expired" in (await refused(b.api("POST", "/api/v1/links/oldlink/join"), "link_invalid")).message
    assert "unknown" in (await refused(b.api("POST", "/api/v1/links/nosuch/join"), "link_invalid")).message

    limited = await owner.api("POST", f"/api/v1/groups/{gid}/links", {"max_uses": 1})
    await admin.api("PUT", f"/api/v1/admin/groups/{gid}/freeze", {"reason": "looking into it"})
    await refused(c.api("POST", f"/api/v1/links/{limited['code']}/join"), "group_frozen", 403)
    link = await node.storage.link(limited["code"])
    assert link is not None and link.uses == 0  # the refused join used nothing up
    await admin.api("DELETE", f"/api/v1/admin/groups/{gid}/freeze")
    await c.api("POST", f"/api/v1/links/{limited['code']}/join")
    await admin.api("DELETE", f"/api/v1/admin/groups/{gid}")
    await refused(b.api("GET", f"/api/v1/links/{limited['code']}"), "link_invalid")  # used up by c


async def test_a_full_group_refuses_a_link_join_without_using_it_up(make_node):
    node = await make_node(group_member_limit=2)
    url = base_url(node)
    owner, a, b = HubbubClient(url), HubbubClient(url), HubbubClient(url)
    try:
        for client, name in ((owner, "cap_own"), (a, "cap_a"), (b, "cap_b")):
            await client.register(name, PASSWORD)
        group = await _group(owner, [])
        link = await owner.api("POST", f"/api/v1/groups/{group['id']}/links", {"max_uses": 5})
        await a.api("POST", f"/api/v1/links/{link['code']}/join")
        await refused(b.api("POST", f"/api/v1/links/{link['code']}/join"), "conflict", 409)
        found = await node.storage.link(link["code"])
        assert found is not None and found.uses == 1
    finally:
        for client in (owner, a, b):
            await client.close()


async def test_approval_required_makes_a_request_that_admins_answer(make_client):
    owner, member, joiner, other = (
        await make_client("ap_own"),
        await make_client("ap_mem"),
        await make_client("ap_join"),
        await make_client("ap_other"),
    )
    await friends(owner, member)
    group = await _group(owner, [member], join_approval=True)
    gid = group["id"]
    link = await owner.api("POST", f"/api/v1/groups/{gid}/links", {})
    asked = await joiner.api("POST", f"/api/v1/links/{link['code']}/join")
    assert asked["group"] is None and asked["request"]["status"] == "pending"
    again = await joiner.api("POST", f"/api/v1/links/{link['code']}/join")
    assert again["request"]["id"] == asked["request"]["id"]  # one pending request per person
    assert [x["uses"] for x in (await owner.api("GET", f"/api/v1/groups/{gid}/links"))["links"]] == [1]
    await refused(joiner.api("GET", f"/api/v1/groups/{gid}"), "not_found")  # not a member yet
    await refused(member.api("GET", f"/api/v1/groups/{gid}/requests"), "forbidden", 403)
    pending = (await owner.api("GET", f"/api/v1/groups/{gid}/requests"))["requests"]
    assert [r["user"]["id"] for r in pending] == [joiner.user_id]
    rid = pending[0]["id"]
    await refused(member.api("POST", f"/api/v1/groups/{gid}/requests/{rid}/approve"), "forbidden")
    approved = await owner.api("POST", f"/api/v1/groups/{gid}/requests/{rid}/approve")
    assert approved["status"] == "approved"
    assert (await joiner.api("GET", f"/api/v1/groups/{gid}"))["id"] == gid
    await refused(owner.api("POST", f"/api/v1/groups/{gid}/requests/{rid}/decline"), "conflict", 409)

    declined = (await other.api("POST", f"/api/v1/links/{link['code']}/join"))["request"]
    answer = await owner.api("POST", f"/api/v1/groups/{gid}/requests/{declined['id']}/decline")
    assert answer["status"] == "declined"
    await refused(other.api("GET", f"/api/v1/groups/{gid}"), "not_found")


async def test_public_groups_are_listed_and_joinable(make_client):
    owner, walker = await make_client("pub_own"), await make_client("pub_walk")
    public = await _group(owner, [], public=True, name="Gardening Club")
    private = await owner.api("POST", "/api/v1/groups", {"name": "Gardening secrets", "members": []})
    found = (await walker.api("GET", "/api/v1/groups/directory", q="garden"))["groups"]
    assert [g["id"] for g in found] == [public["id"]]
    assert [g["id"] for g in (await walker.api("GET", "/api/v1/groups/directory", q="club"))["groups"]] == [
        public["id"]
    ]
    await refused(walker.api("POST", f"/api/v1/groups/{private['id']}/join"), "not_found", 404)
    joined = await walker.api("POST", f"/api/v1/groups/{public['id']}/join")
    assert joined["group"]["me"]["role"] == "member"
    await refused(walker.api("PATCH", f"/api/v1/groups/{public['id']}", {"public": False}), "forbidden", 403)


# -- reports and the admin's actions ---------------------------------------------------------------
async def test_a_report_keeps_its_snapshot_and_the_admin_recalls_from_the_queue(make_client):
    admin, reporter, offender = (
        await make_client("rp_admin"),
        await make_client("rp_rep"),
        await make_client("rp_off"),
    )
    await friends(reporter, offender)
    ack = await offender.send_text("something nasty", to=reporter.user_id)
    target = f"{ack['conv']}:{ack['seq']}"
    await refused(
        admin.api("POST", "/api/v1/reports", {"kind": "message", "target": target, "reason": "x"}),
        "not_found",
    )
    await refused(
        reporter.api("POST", "/api/v1/reports", {"kind": "message", "target": "zz", "reason": "x"}),
        "invalid_field",
    )
    report = await reporter.api(
        "POST", "/api/v1/reports", {"kind": "message", "target": target, "reason": "abuse"}
    )
    assert report["snapshot"]["message"]["body"]["text"] == "something nasty"
    queue = (await admin.api("GET", "/api/v1/admin/reports"))["reports"]
    assert [r["id"] for r in queue] == [report["id"]]
    await refused(
        admin.api("POST", f"/api/v1/admin/reports/{report['id']}/resolve", {"action": "dismiss_group"}),
        "invalid_field",
        422,
    )
    done = await admin.api(
        "POST", f"/api/v1/admin/reports/{report['id']}/resolve", {"action": "recall", "note": "removed"}
    )
    assert (done["status"], done["outcome"]) == ("actioned", "recall")
    assert done["snapshot"]["message"]["body"]["text"] == "something nasty"  # kept as it was
    recall = await reporter.next_event("msg", where=lambda f: f["msg"]["type"] == "recall")
    assert recall["msg"]["body"]["seq"] == ack["seq"]
    outcome = await reporter.next_event("msg", where=lambda f: f["msg"]["type"] == "notice")
    assert f"#{report['id']}" in outcome["msg"]["body"]["text"]
    mine = (await reporter.api("GET", "/api/v1/reports"))["reports"]
    assert mine[0]["outcome"] == "recall" and mine[0]["note"] == "removed"
    await refused(
        admin.api("POST", f"/api/v1/admin/reports/{report['id']}/resolve", {"action": "dismiss"}), "conflict"
    )


async def test_ban_from_a_report_closes_the_sessions_and_a_timed_ban_ends(make_client, node):
    admin, reporter, offender = (
        await make_client("bn_admin"),
        await make_client("bn_rep"),
        await make_client("bn_off"),
    )
    report = await reporter.api(
        "POST", "/api/v1/reports", {"kind": "user", "target": str(offender.user_id), "reason": "spam"}
    )
    await admin.api(
        "POST",
        f"/api/v1/admin/reports/{report['id']}/resolve",
        {"action": "ban", "ban_seconds": 1, "note": "spam"},
    )
    with pytest.raises(ClosedError) as closed:
        await asyncio.wait_for(offender._runner, 5)
    assert closed.value.code == 4403
    record = await admin.api("GET", f"/api/v1/admin/users/{offender.user_id}")
    assert record["banned"] is True and record["ban_reason"] == "spam" and record["banned_until"] > 0
    await refused(offender.login("bn_off", PASSWORD), "forbidden", 403)
    await asyncio.sleep(1.1)
    await offender.login("bn_off", PASSWORD)  # the ban ended by itself


async def test_admin_user_actions_are_audited_with_address(make_client, node):
    admin, target = await make_client("au_admin"), await make_client("au_target")
    await refused(
        admin.api("PUT", f"/api/v1/admin/users/{target.user_id}/ban", {"seconds": -1}), "invalid_field"
    )
    assert (await admin.api("GET", f"/api/v1/admin/users/{target.user_id}"))[
        "banned"
    ] is False  # nothing applied
    out = await admin.api("POST", f"/api/v1/admin/users/{target.user_id}/logout", {"reason": "check"})
    assert out["sessions"] == 1
    with pytest.raises(ClosedError):
        await asyncio.wait_for(target._runner, 5)
    reset = await admin.api("POST", f"/api/v1/admin/users/{target.user_id}/password", {})
    await target.login("au_target", reset["password"])
    await admin.api("PUT", f"/api/v1/admin/users/{target.user_id}/ban", {"reason": "rude", "seconds": 0})
    await admin.api("DELETE", f"/api/v1/admin/users/{target.user_id}/ban")
    gone = await admin.api("DELETE", f"/api/v1/admin/users/{target.user_id}", reason="asked to")
    assert gone["deleted"] is True and gone["user"]["nickname"] == "Deleted user" and gone["banned"] is True
    await refused(target.login("au_target", reset["password"]), "unauthorized")
    await refused(admin.api("DELETE", f"/api/v1/admin/users/{target.user_id}/ban"), "conflict")

    entries = (await admin.api("GET", "/api/v1/admin/audit", target=f"user:{target.user_id}"))["entries"]
    actions = [e["action"] for e in entries]
    assert actions == ["user.delete", "user.unban", "user.ban", "user.password_reset", "user.logout"]
    assert all(e["actor"] == admin.user_id and e["address"] == "127.0.0.1" for e in entries)
    assert entries[0]["reason"] == "asked to" and entries[2]["reason"] == "rude"
    async with aiohttp.ClientSession() as http:
        async with http.get(
            base_url(node) + "/api/v1/admin/audit/export",
            headers={"Authorization": f"Bearer {admin.access_token}"},
            params={"target": f"user:{target.user_id}"},
        ) as resp:
            assert resp.status == 200 and resp.headers["Content-Type"].startswith("application/x-ndjson")
            lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert [e["action"] for e in lines] == list(reversed(actions))


async def test_admin_group_actions_and_the_dashboard(make_client):
    admin, owner, member = (
        await make_client("ag_admin"),
        await make_client("ag_own"),
        await make_client("ag_mem"),
    )
    await friends(owner, member)
    group = await _group(owner, [member])
    gid = group["id"]
    found = (await admin.api("GET", "/api/v1/admin/groups", q="link"))["groups"]
    assert gid in [g["id"] for g in found]
    members = (await admin.api("GET", f"/api/v1/admin/groups/{gid}/members"))["members"]
    assert {m["user"]["id"] for m in members} == {owner.user_id, member.user_id}
    await refused(
        admin.api("POST", f"/api/v1/admin/groups/{gid}/owner", {"user": admin.user_id}), "not_found"
    )
    moved = await admin.api(
        "POST", f"/api/v1/admin/groups/{gid}/owner", {"user": member.user_id, "reason": "x"}
    )
    assert moved["owner"] == member.user_id
    stats = await admin.api("GET", "/api/v1/admin/stats")
    names = {f["name"] for f in stats["figures"]}
    assert {"online_users", "connections", "messages_stored"} <= names
    assert stats["totals"]["users"] >= 3 and stats["totals"]["groups"] >= 1 and stats["nodes"]
