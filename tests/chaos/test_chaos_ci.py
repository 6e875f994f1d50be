"""The chaos run of every CI build: 3 node processes over real Redis and PostgreSQL; 1:1, group and hot-group
traffic; a node SIGKILLed and restarted, Redis restarted empty, a batch of client sockets cut. The exactly-once
checker (hubbub/proof/checker.py) fails the build on any lost, duplicated, reordered or gapped message, or a
refused send that was stored. Its figures are printed in the terminal summary (tests/chaos/conftest.py).

Then one fault is injected into the real result (an acknowledged message deleted from PostgreSQL) to show the
check fails on it: a checker that cannot fail proves nothing.

About 2 minutes; HUBBUB_CHAOS_SECONDS changes the traffic time (default 70).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from tests.chaos import harness

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(300)]

SECONDS = float(os.environ.get("HUBBUB_CHAOS_SECONDS", "70"))
USERS = 40
RATE = 16.0


async def test_exactly_once_through_kill_redis_loss_and_cut_sockets(
    tmp_path: Path, report_figures: Any
) -> None:
    random.seed(23)
    started = time.monotonic()
    cluster = harness.ChaosCluster(tmp_path, 3)
    clients: list[harness.ChaosClient] = []
    stats = harness.Stats()
    try:
        clients, convs, hot_conv = await harness.setup(cluster.urls, USERS, group_size=6, hot_size=10)
        await harness.connect_all(clients)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        until = begin + SECONDS
        pending: set[asyncio.Task[None]] = set()

        async def faults() -> None:
            # Every fault once, spread over the run, each with traffic before and after it.
            await asyncio.sleep(SECONDS * 0.15)
            await harness.kill_and_restart(cluster.nodes[1], stats, down_s=3)
            await asyncio.sleep(max(0.0, begin + SECONDS * 0.4 - loop.time()))
            await harness.restart_redis(cluster.redis, stats)
            await asyncio.sleep(max(0.0, begin + SECONDS * 0.65 - loop.time()))
            await harness.cut_sockets(clients, 0.25, stats)

        await asyncio.gather(
            harness.traffic(clients, convs, stats, RATE, until, pending, hot_conv=hot_conv), faults()
        )
        if pending:
            await asyncio.wait(pending, timeout=100)
        await cluster.revive()
        await harness.final_sync(clients, stats)
        verdict = await harness.verify(clients, convs, stats)
        figures = harness.figures(stats, verdict, clients, started)
        report_figures("chaos run (tests/chaos/test_chaos_ci.py)", figures)

        assert verdict.ok, verdict.problems
        assert stats.chaos == {"kill": 1, "redis": 1, "drop": 1}
        assert len(stats.ledger.acked) > SECONDS * RATE * 0.5, figures
        assert verdict.delivered_live > 0, figures
        assert figures["reconnects"] > 0, figures

        # The check must be able to fail on the real history: lose one acknowledged private message.
        victim = next(a for a in stats.ledger.acked if a.conv.startswith("p:"))
        cluster.sql(f"DELETE FROM messages WHERE id = {int(victim.id)}")
        broken = await harness.verify(clients, {victim.conv: convs[victim.conv]}, stats)
        assert broken.violations["lost"] == 1, broken.problems
        assert broken.violations["gapped"] + broken.violations["copy_extra"] >= 1, broken.problems
    finally:
        await harness.close_all(clients)
        cluster.stop()
