"""Friend requests, accept/decline/remove, with live events on both sides."""

import pytest

from hubbub.client import ApiError


async def test_request_accept_remove_live(make_client):
    alice = await make_client("fa_u")
    bob = await make_client("fb_u")
    request = await alice.api("POST", "/api/v1/friends/requests", {"to": bob.user_id, "note": "it's Alice"})
    assert request["status"] == "pending" and request["note"] == "it's Alice"
    pushed = await bob.next_event("friend")
    assert pushed["event"] == "request" and pushed["request"]["from"]["id"] == alice.user_id

    lists = await bob.api("GET", "/api/v1/friends/requests")
    assert [r["id"] for r in lists["incoming"]] == [request["id"]] and lists["outgoing"] == []
    assert [r["id"] for r in (await alice.api("GET", "/api/v1/friends/requests"))["outgoing"]] == [
        request["id"]
    ]

    with pytest.raises(ApiError) as not_theirs:
        await alice.api("POST", f"/api/v1/friends/requests/{request['id']}/accept")
    assert not_theirs.value.code == "forbidden"

    accepted = await bob.api("POST", f"/api/v1/friends/requests/{request['id']}/accept")
    assert accepted["status"] == "accepted"
    event = await alice.next_event("friend", where=lambda f: f["event"] == "accepted")
    assert event["user"]["id"] == bob.user_id
    friends = (await alice.api("GET", "/api/v1/friends"))["friends"]
    assert [(f["user"]["id"], f["online"]) for f in friends] == [(bob.user_id, True)]

    with pytest.raises(ApiError) as twice:
        await bob.api("POST", f"/api/v1/friends/requests/{request['id']}/accept")
    assert twice.value.code == "conflict"
    with pytest.raises(ApiError) as already:
        await alice.api("POST", "/api/v1/friends/requests", {"to": bob.user_id})
    assert already.value.code == "conflict"

    await bob.api("DELETE", f"/api/v1/friends/{alice.user_id}")
    removed = await alice.next_event("friend", where=lambda f: f["event"] == "removed")
    assert removed["user"]["id"] == bob.user_id
    assert (await alice.api("GET", "/api/v1/friends"))["friends"] == []
    with pytest.raises(ApiError) as gone:
        await bob.api("DELETE", f"/api/v1/friends/{alice.user_id}")
    assert gone.value.code == "not_found"


async def test_decline_and_asking_back_accepts(make_client):
    a = await make_client("da_u")
    b = await make_client("db_u")
    c = await make_client("dc_u")
    r1 = await a.api("POST", "/api/v1/friends/requests", {"to": b.user_id})
    declined = await b.api("POST", f"/api/v1/friends/requests/{r1['id']}/decline")
    assert declined["status"] == "declined"
    assert (await a.next_event("friend", where=lambda f: f["event"] == "declined"))["request"]["id"] == r1[
        "id"
    ]

    await a.api("POST", "/api/v1/friends/requests", {"to": c.user_id})
    both = await c.api("POST", "/api/v1/friends/requests", {"to": a.user_id})
    assert both["status"] == "accepted"
    assert [f["user"]["id"] for f in (await c.api("GET", "/api/v1/friends"))["friends"]] == [a.user_id]


async def test_bad_friend_requests(make_client):
    a = await make_client("ea_u", connect=False)
    for body, code in [
        ({"to": a.user_id}, "invalid_field"),
        ({"to": 999999}, "not_found"),
        ({"to": "x"}, "invalid_field"),
        ({"to": 2, "note": "n" * 300}, "invalid_field"),
        ({}, "invalid_field"),
    ]:
        with pytest.raises(ApiError) as err:
            await a.api("POST", "/api/v1/friends/requests", body)
        assert err.value.code == code, body
    with pytest.raises(ApiError) as unknown:
        await a.api("POST", "/api/v1/friends/requests/424242/accept")
    assert unknown.value.code == "not_found"
