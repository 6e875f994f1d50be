"""Admin routes on one in-process node: who may use them, bans, groups, notices, nodes, config."""

from __future__ import annotations

import pytest

from hubbub.client import ApiError
from hubbub.platform.routing import ROUTES
from tests.conftest import PASSWORD, friends

ADMIN_ROUTES = [r for r in ROUTES if r.path.startswith("/api/v1/admin/")]


#: Well-formed bodies: the refusal must come from the admin check, not the validation.
SAMPLE_BODIES = {
    "/api/v1/admin/users": {"username": "would_be", "password": PASSWORD},
    "/api/v1/admin/notices": {"text": "hi"},
    "/api/v1/admin/words": {"add": ["x"]},
}


def concrete(path: str) -> str:
    return (
        path.replace("{user_id}", "1")
        .replace("{group_id}", "1")
        .replace("{report_id}", "1")
        .replace("{code}", "abc")
        .replace("{conv}", "p:1:2")
    )


async def test_first_user_is_admin_and_others_are_refused_everywhere(make_client):
    admin, user = await make_client("adm_root"), await make_client("adm_plain")
    assert len(ADMIN_ROUTES) >= 12
    me = await admin.api("GET", f"/api/v1/admin/users/{admin.user_id}")
    assert me["is_admin"] and not me["banned"]
    for r in ADMIN_ROUTES:
        body = SAMPLE_BODIES.get(r.path) if r.method == "POST" else None
        with pytest.raises(ApiError) as err:
            await user.api(r.method, concrete(r.path), body)
        assert (err.value.status, err.value.code) == (403, "forbidden"), r.path
    with pytest.raises(ApiError) as err:  # and nobody unauthenticated
        await user.api("GET", "/api/v1/admin/nodes", auth=False)
    assert err.value.status == 401
    # an admin can make another admin, who then gets in
    await admin.api("PUT", f"/api/v1/admin/users/{user.user_id}/admin")
    assert (await user.api("GET", "/api/v1/admin/users"))["users"][0]["user"]["username"] == "adm_root"


async def test_admin_routes_are_in_openapi(make_client):
    client = await make_client(connect=False)
    spec = await client.api("GET", "/openapi.json", auth=False)
    for r in ADMIN_ROUTES:
        assert r.method.lower() in spec["paths"][r.path], r.path


async def test_ban_closes_every_connection_and_revokes_sessions(make_client, node):
    admin = await make_client("ban_admin")
    web = await make_client("ban_target")
    mobile = await make_client("ban_target", register=False, terminal="mobile")
    record = await admin.api("PUT", f"/api/v1/admin/users/{web.user_id}/ban")
    assert record["banned"]
    for client in (web, mobile):
        await client.wait_until(lambda c=client: c.close_code == 4403, timeout=1)
    with pytest.raises(ApiError) as err:
        await web.api("GET", "/api/v1/me")
    assert err.value.code == "token_revoked"
    with pytest.raises(ApiError) as err:
        await web.login("ban_target", PASSWORD)
    assert err.value.code == "forbidden"
    with pytest.raises(ApiError) as err:
        await web.refresh()
    assert err.value.status == 401
    with pytest.raises(ApiError) as err:  # an admin cannot lock themselves out over HTTP
        await admin.api("PUT", f"/api/v1/admin/users/{admin.user_id}/ban")
    assert err.value.code == "invalid_field"
    await admin.api("DELETE", f"/api/v1/admin/users/{web.user_id}/ban")
    await web.login("ban_target", PASSWORD)


async def test_freeze_and_dismiss_a_group(make_client):
    admin, owner, member = await make_client("fz_admin"), await make_client("fz_own"), await make_client("fz_m")
    await friends(owner, member)
    group = await owner.api("POST", "/api/v1/groups", {"name": "loud", "members": [member.user_id]})
    conv = group["conv"]
    await member.send_text("before", conv=conv)

    frozen = await admin.api("PUT", f"/api/v1/admin/groups/{group['id']}/freeze")
    assert frozen["frozen"]
    notice = await member.next_event("msg", where=lambda f: f["msg"]["type"] == "system" and f["msg"]["body"]["event"] == "frozen")
    assert notice["msg"]["body"]["by_admin"] is True
    for sender in (member, owner):  # even the owner: read-only for everyone
        with pytest.raises(ApiError) as err:
            await sender.api("POST", "/api/v1/messages", {"cmid": f"fz-{sender.user_id}", "conv": conv, "body": {"text": "x"}})
        assert (err.value.status, err.value.code) == (403, "group_frozen")
    assert len((await member.api("GET", f"/api/v1/conversations/{conv}/messages", after_seq=0))["messages"]) >= 3

    await admin.api("DELETE", f"/api/v1/admin/groups/{group['id']}/freeze")
    await member.send_text("after", conv=conv)

    dismissed = await admin.api("DELETE", f"/api/v1/admin/groups/{group['id']}")
    assert dismissed["dismissed"]
    with pytest.raises(ApiError) as err:
        await member.api("POST", "/api/v1/messages", {"cmid": "fz-late", "conv": conv, "body": {"text": "x"}})
    assert err.value.code == "group_dismissed"
    with pytest.raises(ApiError) as err:
        await admin.api("DELETE", f"/api/v1/admin/groups/{group['id']}")
    assert err.value.code == "group_dismissed"


async def test_notice_to_one_user_and_to_everyone(make_client):
    admin, online = await make_client("nt_admin"), await make_client("nt_online")
    offline = await make_client("nt_offline", connect=False)
    banned = await make_client("nt_banned", connect=False)
    await admin.api("PUT", f"/api/v1/admin/users/{banned.user_id}/ban")

    sent = await admin.api("POST", "/api/v1/admin/notices", {"text": "maintenance at 22:00", "user": online.user_id})
    assert sent == {"sent": 1}
    push = (await online.next_event("msg"))["msg"]
    assert push["type"] == "notice" and push["body"] == {"text": "maintenance at 22:00"}
    server_id = push["sender"]
    assert server_id not in (admin.user_id, online.user_id)
    profile = await online.api("GET", f"/api/v1/users/{server_id}")
    assert profile["username"] == "~hubbub" and profile["nickname"] == "Hubbub"

    everyone = await admin.api("POST", "/api/v1/admin/notices", {"text": "welcome"})
    assert everyone["sent"] == 3  # admin, online, offline: not the banned one, not the server account
    assert (await online.next_event("msg"))["msg"]["body"] == {"text": "welcome"}
    # the offline user finds both notices they were sent at their next sync, as unread messages
    await offline.connect()
    convs = {c["conv"]: c for c in await offline.sync()}
    notices = [c for c in convs.values() if c["peer"] == server_id]
    assert len(notices) == 1 and notices[0]["unread"] == 1
    assert [m["body"]["text"] for m in offline.history(notices[0]["conv"])] == ["welcome"]
    # nobody can answer the server account, nor log in as it
    with pytest.raises(ApiError) as err:
        await online.send_text("hello?", to=server_id)
    assert err.value.code == "not_friends"
    with pytest.raises(ApiError):
        await online.login("~hubbub", "!")


async def test_users_nodes_and_config(make_client, node):
    admin = await make_client("cfg_admin")
    await make_client("cfg_other")
    page = await admin.api("GET", "/api/v1/admin/users", q="cfg_", limit=1)
    assert [u["user"]["username"] for u in page["users"]] == ["cfg_admin"] and page["next_after"] is not None
    rest = await admin.api("GET", "/api/v1/admin/users", q="cfg_", after=page["next_after"])
    assert [u["user"]["username"] for u in rest["users"]] == ["cfg_other"]

    await node.report_load()
    nodes = (await admin.api("GET", "/api/v1/admin/nodes"))["nodes"]
    assert [(n["node"], n["alive"], n["connections"], n["users"]) for n in nodes] == [("test", True, 2, 2)]

    created = await admin.api(
        "POST", "/api/v1/admin/users", {"username": "cfg_made", "password": PASSWORD, "admin": True}
    )
    assert created["is_admin"] and created["user"]["username"] == "cfg_made"

    config = (await admin.api("GET", "/api/v1/admin/config"))["config"]
    assert config["node_id"] == "test" and config["word_filter"] == "replace"
    assert "jwt_secret" in config and config["jwt_secret"] == ""  # not configured: generated into the data dir


async def test_config_masks_secrets(make_node, make_client):
    from hubbub.services.admin import masked_config
    from tests.conftest import test_config

    cfg = test_config(
        __import__("pathlib").Path("/tmp"),
        jwt_secret="s3cr3t-value",
        s3_secret_key="aws-secret",
        database="postgresql://hubbub:pa55word@db:5432/hubbub",
        redis="redis://:redispass@redis:6379/0",
    )
    shown = masked_config(cfg)
    text = repr(shown)
    for secret in ("s3cr3t-value", "aws-secret", "pa55word", "redispass"):
        assert secret not in text
    assert shown["database"] == "postgresql://hubbub:********@db:5432/hubbub"
    assert shown["redis"] == "redis://:********@redis:6379/0"
