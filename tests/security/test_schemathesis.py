"""The OpenAPI document against the live server, through schemathesis (a small, deterministic run for CI).

Longer run (about 2 minutes; docs/security.md, "Fuzzing"):

    HUBBUB_SCHEMATHESIS_EXAMPLES=30 .venv/bin/pytest tests/security/test_schemathesis.py

Checks: no 5xx, responses match their schemas and content types, statuses are declared, unknown methods get
405, and schema-violating requests are refused. Not checked: ``positive_data_acceptance`` (a schema-valid
request may still break a rule: a dismissed group, befriending yourself) — see docs/security.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from hubbub.client import HubbubClient
from tests.conftest import PASSWORD, TIMEOUT_FACTOR, base_url
from tests.security.conftest import RELAXED

EXAMPLES = os.environ.get("HUBBUB_SCHEMATHESIS_EXAMPLES", "3")
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "negative_data_rejection",
        "unsupported_method",
    ]
)


async def test_openapi_schema_holds_against_the_live_server(make_node, tmp_path: Path):
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if cli is None:
        pytest.skip("schemathesis is not installed (pip install -e .[test])")
    node = await make_node(**RELAXED)
    url = base_url(node)
    client = HubbubClient(url)
    await client.register("schemathesis", PASSWORD)
    try:
        proc = await asyncio.create_subprocess_exec(
            cli, "run", f"{url}/openapi.json",
            "--header", f"Authorization: Bearer {client.access_token}",
            "--max-examples", EXAMPLES, "--seed", "1", "--generation-deterministic",
            "--checks", CHECKS, "--phases", "coverage,fuzzing",
            # The fuzzer must not end its own session, nor touch server administration.
            "--exclude-path", "/api/v1/auth/logout", "--exclude-path", "/api/v1/auth/password",
            "--exclude-path-regex", "^/api/v1/admin/",
            "--request-timeout", "10", "--no-color",
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 240 * TIMEOUT_FACTOR)
    finally:
        await client.close()
    assert proc.returncode == 0, out.decode()[-6000:]
