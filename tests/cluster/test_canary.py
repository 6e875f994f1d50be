"""The canary against a live 2-node cluster (real processes, Redis, PostgreSQL) for about a minute, with one
node SIGKILLed and restarted: every path (private, group, hot group, offline then sync) is checked end to end,
with 0 violations; its metrics are served; its accounts are marked canary and hidden from user search."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiohttp
import pytest

from hubbub.client import HubbubClient
from hubbub.proof.canary import PATHS, Canary, CanaryOptions
from tests.chaos import harness

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(180)]

SECONDS = float(os.environ.get("HUBBUB_CANARY_SECONDS", "45"))


async def test_the_canary_sees_no_violation_through_a_node_restart(tmp_path: Path) -> None:
    cluster = harness.ChaosCluster(tmp_path, 2)
    try:
        async with HubbubClient(cluster.urls) as admin:
            await admin.register("operator", harness.PASSWORD)  # the first account: the administrator
            options = CanaryOptions(
                urls=cluster.urls,
                admin_user="operator",
                admin_password=harness.PASSWORD,
                password="canary-password-1",
                interval_s=1.0,
                grace_s=4.0,
                duration_s=SECONDS,
                metrics_port=0,
                offline_every=4,
            )
            canary = Canary(options)
            running = asyncio.get_running_loop().create_task(canary.run())
            await asyncio.sleep(SECONDS / 3)
            await harness.kill_and_restart(cluster.nodes[1], harness.Stats(), down_s=2)
            while not running.done() and canary.metrics_port is None:
                await asyncio.sleep(0.1)
            port = canary.metrics_port
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/metrics") as resp:
                exposition = await resp.text()
            await running

            m = canary.metrics
            assert m.total_violations() == 0
            checked = {path: m.checked.labels(path)._value.get() for path in PATHS}
            assert all(n > 0 for n in checked.values()), checked
            assert sum(m.failures.labels(w)._value.get() for w in ("send_refused",)) == 0
            assert 'hubbub_canary_sent_total{path="private"}' in exposition
            assert 'hubbub_canary_violations_total{kind="lost"} 0.0' in exposition
            assert "hubbub_canary_latency_seconds_bucket" in exposition

            # Marked canary: hidden from user search, flagged for the administrator.
            found = await admin.api("GET", "/api/v1/users", q="canary_")
            assert found["users"] == []
            listed = await admin.api("GET", "/api/v1/admin/users", q="canary_")
            assert len(listed["users"]) == 4 and all(u["canary"] for u in listed["users"])
    finally:
        cluster.stop()
