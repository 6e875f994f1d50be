"""A request aiohttp's HTTP parser refuses is one WARNING line, not an ERROR with a traceback.

Anyone can send ``Content-Length: abc``; before, each such request logged aiohttp's traceback at ERROR, so a
scanner could fill the error log and page whoever watches it (platform/access_log.py).
"""

from __future__ import annotations

import json

from tests.ops.test_logs import json_logs  # noqa: F401  (the fixture)
from tests.security.test_fuzz import raw_http


async def test_bad_content_length_is_one_warning_line(node, json_logs):  # noqa: F811
    lines = json_logs()
    secret = "Bearer not-to-be-logged"
    answer = await raw_http(
        node.port, "POST", "/api/v1/auth/login", [("Authorization", secret), ("Content-Length", "abc")], b""
    )
    assert answer.status == 400
    logged = lines()
    bad = [line for line in logged if line["event"] == "http_bad_request"]
    assert len(bad) == 1, logged
    assert bad[0]["level"] == "warning" and bad[0]["status"] == 400 and bad[0]["reason"]
    assert bad[0]["logger"] == "aiohttp.server" and bad[0]["peer"] == "127.0.0.1"
    assert "exception" not in bad[0]
    assert not [line for line in logged if line["level"] in ("error", "critical")], logged
    assert "not-to-be-logged" not in json.dumps(logged)
