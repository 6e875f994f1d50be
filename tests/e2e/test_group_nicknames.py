"""A group nickname follows the account nickname's rule (services/names.py): format characters removed, ends
trimmed, at most 64 characters, no control characters, never the server's name. Before, ``PATCH
/groups/{id}/me`` only trimmed and counted, so a member could call themselves "Hubbub" in a group or hide a
right-to-left override in their name there."""

from __future__ import annotations

import pytest

from hubbub.client import ApiError
from tests.conftest import friends


async def test_group_nickname_has_the_account_nickname_rules(make_client):
    owner, member = await make_client("gn_owner"), await make_client("gn_member")
    await friends(owner, member)
    group = await owner.api("POST", "/api/v1/groups", {"name": "nicks", "members": [member.user_id]})
    path = f"/api/v1/groups/{group['id']}/me"

    for refused in ("Hubbub", "ＨＵＢＢＵＢ", "Hub\u200bbub", "a\x07b", "x" * 65):
        with pytest.raises(ApiError) as err:
            await member.api("PATCH", path, {"nickname": refused})
        assert (err.value.status, err.value.code) == (422, "invalid_field"), refused

    cleaned = await member.api("PATCH", path, {"nickname": " \u202eAce\u2066 "})
    assert cleaned["nickname"] == "Ace"
    cleared = await member.api("PATCH", path, {"nickname": "\u200b "})
    assert cleared["nickname"] == ""
    page = await owner.api("GET", f"/api/v1/groups/{group['id']}/members")
    assert {m["user"]["id"]: m["nickname"] for m in page["members"]}[member.user_id] == ""
