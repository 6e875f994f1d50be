"""The one bearer-token reader (platform/bearer.py), used by the routes, the edge limiter, downloads and
/metrics: before, four copies differed on an empty token, stripping and the query fallback."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from hubbub.core.errors import Code, HubbubError
from hubbub.platform.bearer import bearer, bearer_token


def _request(authorization: str | None = None, query: str = "") -> web.Request:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return make_mocked_request("GET", f"/api/v1/uploads/x{query}", headers=headers)


@pytest.mark.parametrize(
    ("authorization", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer abc", "abc"),
        ("BEARER   abc  ", "abc"),
        ("Bearer", ""),
        ("Bearer    ", ""),
        ("Basic abc", ""),
        ("abc", ""),
        (None, ""),
    ],
)
def test_header(authorization: str | None, token: str) -> None:
    assert bearer_token(_request(authorization)) == token


def test_query_only_where_asked_and_the_header_wins() -> None:
    assert bearer_token(_request(None, "?access_token=q")) == ""
    assert bearer_token(_request(None, "?access_token=%20q%20"), query=True) == "q"
    assert bearer_token(_request("Bearer h", "?access_token=q"), query=True) == "h"
    assert bearer_token(_request("Bearer ", "?access_token=q"), query=True) == "q"


def test_missing_is_unauthorized() -> None:
    with pytest.raises(HubbubError) as err:
        bearer(_request("Bearer  "))
    assert err.value.code == Code.UNAUTHORIZED
    assert bearer(_request("Bearer t")) == "t"
