"""Exports and closing accounts, end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from typing import Any

import aiohttp

from hubbub.client import HubbubClient
from hubbub.node import Node
from tests.conftest import PASSWORD, base_url
from tests.lifecycle.helpers import raw, upload, user

LIFE = {"retention_interval_s": 0, "blob_gc_grace_s": 0}


async def _ready(client: HubbubClient, export_id: str) -> dict[str, Any]:
    for _ in range(200):
        view = await client.api("GET", f"/api/v1/exports/{export_id}")
        if view["status"] in ("ready", "failed"):
            assert view["status"] == "ready", view
            return dict(view)
        await asyncio.sleep(0.05)
    raise AssertionError("the export never finished")


async def _download(node: Node, url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as http:  # no token: the signed link is the authorization
        async with http.get(base_url(node) + url) as resp:
            return resp.status, await resp.read()


async def test_user_export(make_node, engine):
    node = await make_node(**engine, **LIFE)
    a = await user(node, "ann")
    b = await user(node, "bob")
    await a.befriend(b)
    group = await a.api("POST", "/api/v1/groups", {"name": "club", "members": [b.user_id]})
    await b.send_text("hello from bob", to=a.user_id)
    await a.send_text("hello club", conv=group["conv"])
    mine = await upload(a, b"ann's own file\n", "mine.txt")
    theirs = await upload(b, b"bob's private file\n", "bob.txt")

    # Asked for twice while it is being built: the second is refused, and only one export exists.
    gate = asyncio.Event()
    original = node.services.exports._write_user

    async def held(zf: Any, uid: int) -> None:
        await gate.wait()
        await original(zf, uid)

    node.services.exports._write_user = held  # type: ignore[method-assign]
    first = await a.api("POST", "/api/v1/exports")
    assert first["status"] == "pending" and first["download_url"] is None
    status, body = await raw(a, node, "POST", "/api/v1/exports")
    assert (status, body["error"]["code"]) == (409, "conflict")
    gate.set()
    view = await _ready(a, first["id"])
    assert [e["id"] for e in (await a.api("GET", "/api/v1/exports"))["exports"]] == [first["id"]]
    assert (await raw(b, node, "GET", f"/api/v1/exports/{first['id']}"))[0] == 404  # not bob's

    status, data = await _download(node, view["download_url"])
    assert status == 200 and len(data) == view["size"]
    zf = zipfile.ZipFile(io.BytesIO(data))
    names = set(zf.namelist())
    assert {
        "README.txt",
        "export.json",
        "profile.json",
        "friends.json",
        "social.json",
        "groups.json",
        "uploads.json",
    } <= names
    social = json.loads(zf.read("social.json"))
    assert social["blocks"] == [] and social["last_seen_privacy"] == "friends"
    assert json.loads(zf.read("profile.json"))["user"]["id"] == a.user_id
    assert [f["user"]["id"] for f in json.loads(zf.read("friends.json"))] == [b.user_id]
    assert [g["id"] for g in json.loads(zf.read("groups.json"))] == [group["id"]]
    private = zf.read(f"messages/p_{min(a.user_id, b.user_id)}_{max(a.user_id, b.user_id)}.jsonl").decode()
    assert "hello from bob" in private
    assert "hello club" in zf.read(f"messages/{group['conv'].replace(':', '_')}.jsonl").decode()
    assert zf.read(f"media/{mine['upload']}-mine.txt") == b"ann's own file\n"
    assert [u["id"] for u in json.loads(zf.read("uploads.json"))] == [mine["upload"]]
    assert not any(theirs["upload"] in n for n in names)  # bob's file is bob's

    # A tampered link is nobody's; an expired export is gone (410) and its archive deleted.
    status, _ = await _download(node, view["download_url"].replace("sig=", "sig=0"))
    assert status == 404
    assert await node.services.exports.sweep(now=view["expires_at"] + 1) == 1
    status, body = await _download(node, view["download_url"])
    assert status == 410 and json.loads(body)["error"]["code"] == "expired"
    assert (await a.api("GET", f"/api/v1/exports/{first['id']}"))["status"] == "expired"
    again = await a.api("POST", "/api/v1/exports")  # a finished export frees the slot
    await _ready(a, again["id"])
    for c in (a, b):
        await c.close()


async def test_admin_conversation_export(make_node, engine):
    node = await make_node(**engine, **LIFE)
    admin = await user(node, "root")
    a = await user(node)
    b = await user(node)
    await a.befriend(b)
    up = await upload(a, b"evidence\n", "evidence.txt")
    await a.send({"msg_type": "file", "body": {"upload": up["upload"]}}, to=b.user_id)
    ack = await b.send_text("the reply", to=a.user_id)
    status, body = await raw(a, node, "POST", f"/api/v1/admin/conversations/{ack['conv']}/export")
    assert (status, body["error"]["code"]) == (403, "forbidden")
    status, body = await raw(admin, node, "POST", "/api/v1/admin/conversations/p:9998:9999/export")
    assert (status, body["error"]["code"]) == (404, "not_found")
    job = await admin.api("POST", f"/api/v1/admin/conversations/{ack['conv']}/export")
    view = await _ready(admin, job["id"])
    status, data = await _download(node, view["download_url"])
    zf = zipfile.ZipFile(io.BytesIO(data))
    lines = [json.loads(x) for x in zf.read("messages.jsonl").splitlines()]
    assert [m["seq"] for m in lines] == [1, 2] and lines[1]["body"]["text"] == "the reply"
    meta = json.loads(zf.read("conversation.json"))
    assert sorted(m["id"] for m in meta["members"]) == sorted([a.user_id, b.user_id])
    assert zf.read(f"media/{up['upload']}-evidence.txt") == b"evidence\n"
    for c in (admin, a, b):
        await c.close()


async def test_closing_an_account(make_node, engine):
    node = await make_node(**engine, **LIFE)
    admin = await user(node, "root")
    bob = await user(node, "bob")
    cat = await user(node, "cat")
    await bob.befriend(admin)
    await bob.befriend(cat)
    group = await bob.api(
        "POST", "/api/v1/groups", {"name": "bob's", "members": [admin.user_id, cat.user_id]}
    )
    await bob.api("PUT", f"/api/v1/groups/{group['id']}/admins/{cat.user_id}")
    said = await bob.send_text("remember me", to=admin.user_id)
    await bob.send_text("in the group", conv=group["conv"])
    sent = await upload(bob, b"shared file\n")
    await bob.send({"msg_type": "file", "body": {"upload": sent["upload"]}}, to=admin.user_id)
    private = await upload(bob, b"only bob ever saw this\n")

    # Wrong password: refused, nothing changed.
    status, body = await raw(bob, node, "DELETE", "/api/v1/me", json={"password": "not-it"})
    assert (status, body["error"]["code"]) == (401, "unauthorized")
    assert (await bob.api("GET", "/api/v1/me"))["nickname"].startswith("bob")

    status, _ = await raw(bob, node, "DELETE", "/api/v1/me", json={"password": PASSWORD})
    assert status == 204
    await bob.wait_until(lambda: bob.close_code == 4403)
    status, body = await raw(
        None,
        node,
        "POST",
        "/api/v1/auth/login",
        json={"username": bob.user["username"], "password": PASSWORD},
    )  # type: ignore[index]
    assert status in (401, 403)

    # Their messages stay, under "Deleted user"; the group passed to its admin; friendships are gone.
    profile = await admin.api("GET", f"/api/v1/users/{bob.user_id}")
    assert (profile["nickname"], profile["deleted"], profile["system"]) == ("Deleted user", True, False)
    history = await admin.api("GET", f"/api/v1/conversations/{said['conv']}/messages")
    assert [m["sender"] for m in history["messages"]][:1] == [bob.user_id] and "remember me" in str(history)
    g = await admin.api("GET", f"/api/v1/groups/{group['id']}")
    assert g["owner"] == cat.user_id and g["member_count"] == 2
    assert bob.user_id not in [
        f["user"]["id"] for f in (await admin.api("GET", "/api/v1/friends"))["friends"]
    ]
    # The file sent to admin stays readable by admin; the one never sent is deleted with its bytes.
    async with admin.http.get(
        f"{admin.base_url}/api/v1/uploads/{sent['upload']}",
        headers={"Authorization": f"Bearer {admin.access_token}"},
    ) as resp:
        assert resp.status == 200
    assert await node.storage.upload(private["upload"]) is None
    assert (await node.services.media.gc_once()).blobs == 1

    # An admin closes cat's account; closing it again is not_found.
    status, _ = await raw(admin, node, "DELETE", f"/api/v1/admin/users/{cat.user_id}")
    assert status == 200  # the closed account's record (routes_admin.py, audited)
    status, body = await raw(admin, node, "DELETE", f"/api/v1/admin/users/{cat.user_id}")
    assert (status, body["error"]["code"]) == (404, "not_found")
    g = await admin.api("GET", f"/api/v1/groups/{group['id']}")
    assert g["owner"] == admin.user_id and g["member_count"] == 1
    for c in (admin, bob, cat):
        await c.close()


async def test_a_large_export_streams_in_bounded_memory(make_node):
    """40,000 messages (about 6 MB of JSON) exported while Python's allocations are traced: the build's
    peak stays far below what holding them would take, because it writes a page of 500 at a time."""
    import sqlite3
    import tracemalloc

    node = await make_node(**LIFE)
    a = await user(node)
    b = await user(node)
    await a.befriend(b)
    first = await a.send_text("first", to=b.user_id)
    conv, n = first["conv"], 40_000
    db = sqlite3.connect(f"{node.config.data_dir}/hubbub.db")
    filler = "x" * 120
    db.executemany(
        "INSERT INTO messages VALUES (?, ?, ?, ?, ?, 'text', ?, ?, 0)",
        [
            (
                conv,
                s,
                9_000_000 + s,
                a.user_id,
                f"bulk{s}",
                json.dumps({"text": f"{s} {filler}"}),
                first["ts"],
            )
            for s in range(2, n + 2)
        ],
    )
    db.execute("UPDATE conversations SET max_seq = ? WHERE conv = ?", (n + 1, conv))
    db.commit()
    db.close()

    tracemalloc.start()
    try:
        job = await a.api("POST", "/api/v1/exports")
        view = await _ready(a, job["id"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"export of {n} messages: traced peak {peak} bytes")
    assert peak < 4_000_000, f"peak {peak} bytes while exporting {n} messages"
    status, data = await _download(node, view["download_url"])
    lines = zipfile.ZipFile(io.BytesIO(data)).read(f"messages/{conv.replace(':', '_')}.jsonl").splitlines()
    assert status == 200 and len(lines) == n + 1 and json.loads(lines[-1])["seq"] == n + 1
    for c in (a, b):
        await c.close()
