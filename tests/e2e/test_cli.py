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
            deadline = asyncio.get_running_loop().time() + 60  # a loaded CI machine starts slowly
            while True:
                try:
                    async with http.get(url + "/healthz") as resp:
                        if resp.status == 200:
                            break
                except aiohttp.ClientError:
                    assert asyncio.get_running_loop().time() < deadline, "the server did not start"
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
    # A plain line for the person who started it, besides the JSON log (issue 12, "First run").
    assert f"Hubbub is running: open {url} in a browser" in out.decode()


def test_a_taken_port_is_one_clear_line_not_a_traceback(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "hubbub", "serve", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode != 0
    assert f"port {port} is in use" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert len((done.stderr + done.stdout).strip().splitlines()) <= 2


async def test_single_roles(make_node):
    """A gateway-only node serves /ws but no API; a platform-only node the API but no /ws."""
    gateway = await make_node(role="gateway", node_id="gw")
    platform = await make_node(role="platform", node_id="pf", data_dir=gateway.config.data_dir)
    async with aiohttp.ClientSession() as http:
        async with http.post(f"http://127.0.0.1:{gateway.port}/api/v1/auth/login", json={}) as resp:
            assert resp.status == 404
        async with http.get(f"http://127.0.0.1:{gateway.port}/readyz") as resp:
            assert resp.status == 200
        async with http.post(
            f"http://127.0.0.1:{platform.port}/api/v1/auth/register",
            json={"username": "rolez", "password": PASSWORD},
        ) as resp:
            assert resp.status == 201
            token = (await resp.json())["access_token"]
        async with http.get(f"http://127.0.0.1:{platform.port}/ws") as resp:
            assert resp.status in (404, 405)
        ws = await http.ws_connect(f"ws://127.0.0.1:{gateway.port}/ws")
        await ws.send_json({"type": "auth", "token": token, "terminal": "web"})
        assert (await ws.receive_json(timeout=5))["type"] == "auth_ok"
        await ws.close()
