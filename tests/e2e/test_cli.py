"""The README's promise: `hubbub serve` with no configuration starts a working server."""

import asyncio
import os
import socket
import subprocess
import sys

import aiohttp

from hubbub.client import HubbubClient
from tests.conftest import PASSWORD


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_hubbub_serve_runs_with_defaults(tmp_path):
    port = free_port()
    env = {**os.environ, "HUBBUB_ARGON2_TIME_COST": "1", "HUBBUB_ARGON2_MEMORY_KIB": "256"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "hubbub", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:
            for _ in range(100):
                try:
                    async with http.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
            async with http.get(url + "/") as resp:
                assert resp.status == 200 and "text/html" in resp.headers["Content-Type"]
        a, b = HubbubClient(url), HubbubClient(url)
        try:
            await a.register("cli_a", PASSWORD)
            await b.register("cli_b", PASSWORD)
            await a.befriend(b)
            await b.connect()
            ack = await a.api(
                "POST", "/api/v1/messages", {"cmid": "1", "to": b.user_id, "body": {"text": "hi"}}
            )
            assert (await b.next_event("msg"))["msg"]["seq"] == ack["seq"]
        finally:
            await a.close()
            await b.close()
        # Its state lives in the default data directory, secret included.
        assert (tmp_path / "hubbub-data" / "hubbub.db").exists()
        assert (tmp_path / "hubbub-data" / "jwt-secret").exists()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode()[-2000:]
