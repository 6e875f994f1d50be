"""Operations endpoints: metrics move as traffic flows; liveness and readiness answer; who may scrape."""

import asyncio
import contextlib
import re
from pathlib import Path

import aiohttp
import pytest

from hubbub.client import HubbubClient
from tests import servers
from tests.conftest import PASSWORD, base_url, friends


def metric(text: str, name: str, labels: str = "") -> float:
    key = f"{name}{{{labels}}}" if labels else name
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.split()[-1])
    return 0.0


async def scrape(node) -> str:
    async with aiohttp.ClientSession() as http, http.get(base_url(node) + "/metrics") as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        return await resp.text()


async def test_metrics_follow_traffic(make_client, node):
    alice, bob = await make_client("mt_a"), await make_client("mt_b")
    await friends(alice, bob)
    before = await scrape(node)
    for i in range(5):
        await alice.send_text(f"m{i}", to=bob.user_id)
    await bob.wait_until(lambda: len(bob.history(f"p:{alice.user_id}:{bob.user_id}")) == 5)
    try:
        await alice.send_text("x", to=999999)
    except Exception:
        pass
    after = await scrape(node)
    assert metric(after, "hubbub_messages_stored_total", 'type="text"') - metric(before, "hubbub_messages_stored_total", 'type="text"') == 5
    assert metric(after, "hubbub_frames_out_total") > metric(before, "hubbub_frames_out_total")
    assert metric(after, "hubbub_bytes_out_total") > metric(before, "hubbub_bytes_out_total")
    assert metric(after, "hubbub_db_queries_total") > metric(before, "hubbub_db_queries_total")
    assert metric(after, "hubbub_ack_latency_seconds_count") - metric(before, "hubbub_ack_latency_seconds_count") >= 5
    assert metric(after, "hubbub_errors_total", 'code="not_found"') >= 1
    assert metric(after, "hubbub_connections", 'terminal="web"') == 2


async def test_liveness_and_readiness(node):
    async with aiohttp.ClientSession() as http:
        for path in ("/livez", "/readyz", "/healthz"):
            async with http.get(base_url(node) + path) as resp:
                assert resp.status == 200, path
        await node.gateway.drain()
        async with http.get(base_url(node) + "/readyz") as resp:
            assert resp.status == 503 and (await resp.json())["error"]["code"] == "unavailable"
        async with http.get(base_url(node) + "/livez") as resp:
            assert resp.status == 200


# -- who may scrape (issue 12.23) -------------------------------------------------------------------
def _outside_address() -> str | None:
    """This machine's address on a non-loopback interface (a caller that is not local), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing interface
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


async def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers or {}) as resp:
        return resp.status, await resp.text()


async def test_metrics_by_default_only_for_this_host(make_node):
    import pytest

    node = await make_node(host="0.0.0.0")
    status, text = await _get(f"http://127.0.0.1:{node.port}/metrics")
    assert status == 200 and "hubbub_uptime_seconds" in text
    # Through a proxy on this host, the caller is someone else.
    status, text = await _get(f"http://127.0.0.1:{node.port}/metrics", {"X-Forwarded-For": "203.0.113.9"})
    assert status == 403 and '"forbidden"' in text
    outside = _outside_address()
    if outside is None:
        pytest.skip("no non-loopback interface to call from")
    status, text = await _get(f"http://{outside}:{node.port}/metrics")
    assert status == 403 and "HUBBUB_METRICS_TOKEN" in text


async def test_metrics_token(make_node):
    node = await make_node(metrics_token="s3cret-scrape")
    url = f"http://127.0.0.1:{node.port}/metrics"
    assert (await _get(url))[0] == 401
    assert (await _get(url, {"Authorization": "Bearer wrong"}))[0] == 401
    status, text = await _get(url, {"Authorization": "Bearer s3cret-scrape"})
    assert status == 200 and "hubbub_uptime_seconds" in text


async def test_metrics_on_their_own_listener(make_node):
    node = await make_node(metrics_listen="127.0.0.1:0")
    assert node.metrics_port is not None and node.metrics_port != node.port
    status, text = await _get(f"http://127.0.0.1:{node.metrics_port}/metrics")
    assert status == 200 and "hubbub_uptime_seconds" in text
    status, text = await _get(f"http://127.0.0.1:{node.port}/metrics")  # not on the main port any more
    assert status == 404 and "hubbub_uptime_seconds" not in text


# -- every documented metric is exported and moves (issue 13.4) -------------------------------------
OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
#: Gauges that hold still under a little traffic, so only their presence is checked: buffers drain before a
#: scrape sees them, Redis stays up, and the node reads its queue as fast as it fills (the lag itself is
#: tested in tests/cluster/test_redis_health.py).
STILL = {"hubbub_send_buffer_bytes", "hubbub_send_buffer_max_bytes", "hubbub_redis_up", "hubbub_node_stream_lag"}
#: The search indexer keeps up with a few messages (lag back to 0 by the scrape) and does not fail.
STILL |= {"hubbub_search_index_lag", "hubbub_search_indexer_failures_total"}
#: No account is marked canary here (tests/e2e/test_metrics.py::test_the_canary_is_left_out_of_product_metrics).
STILL |= {"hubbub_canary_connections"}


def documented_metrics() -> dict[str, bool]:
    """name -> cluster only, from the table in docs/operations.md's "Metrics" section."""
    section = OPERATIONS.read_text().split("## Metrics", 1)[1].split("\n## ", 1)[0]
    found: dict[str, bool] = {}
    for line in section.splitlines():
        if line.startswith("| `hubbub_"):
            first, _, rest = line[1:].partition("|")
            for name in re.findall(r"`(hubbub_[a-z_]+)", first):
                found[name] = "cluster only" in rest
    return found


def series(text: str) -> dict[str, float]:
    """metric name -> the sum of its samples (a histogram by its ``_count``)."""
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name = re.split(r"[{ ]", line, maxsplit=1)[0]
        if name.endswith(("_bucket", "_sum", "_created")):
            continue
        name = name.removesuffix("_count")
        totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


@pytest.fixture(params=["single", "cluster"])
async def metered_node(request: pytest.FixtureRequest, make_node):
    options = {"hot_group_threshold": 3, "hot_signal_window_ms": 50}
    if request.param == "cluster":
        redis = servers.RedisServer().start()
        request.addfinalizer(redis.stop)
        options |= {"redis": redis.url, "jwt_secret": "metrics-test-" + "x" * 32}
    return request.param, await make_node(**options)


async def test_every_documented_metric_is_exported_and_moves(metered_node):
    kind, node = metered_node
    documented = documented_metrics()
    assert len(documented) >= 18, documented  # the table was parsed
    expected = {name for name, cluster_only in documented.items() if kind == "cluster" or not cluster_only}
    before = series(await scrape(node))
    missing = expected - before.keys()
    assert not missing, f"documented but not exported before traffic on a {kind} node: {missing}"

    clients = [HubbubClient(base_url(node)) for _ in range(3)]
    try:
        for i, client in enumerate(clients):
            await client.register(f"mv_{kind}_{i}", PASSWORD)
        await friends(*clients)
        for client in clients:
            await client.connect()
        owner, a, b = clients
        await owner.send_text("private", to=a.user_id)
        group = await owner.api("POST", "/api/v1/groups", {"name": "hot", "members": [a.user_id, b.user_id]})
        for i in range(5):
            await a.send_text(f"hot {i}", conv=group["conv"])
        await b.wait_until(lambda: len(b.history(group["conv"])) >= 6, timeout=10)
        with contextlib.suppress(Exception):
            await a.api("GET", "/api/v1/users/999999")  # a not_found
        for _ in range(100):  # the indexer has the messages within a pass or two
            if (await a.api("GET", "/api/v1/search", q="hot"))["results"]:
                break
            await asyncio.sleep(0.1)
        after = series(await scrape(node))
    finally:
        for client in clients:
            await client.close()

    missing = expected - after.keys()
    assert not missing, f"documented but not exported on a {kind} node: {missing}"
    still = {name for name in expected - STILL if after[name] == before[name]}
    assert not still, f"did not move with traffic on a {kind} node: {still}"


async def test_the_canary_is_left_out_of_product_metrics(make_client, node):
    """Accounts marked canary (``hubbub canary``) are synthetic: their messages and connections must not pass
    for people's. Marking one on this node takes effect at once."""
    admin = await make_client("mc_admin")  # the first account: the administrator
    canary, peer = await make_client("mc_canary"), await make_client("mc_peer")
    await friends(canary, peer)
    await admin.api("PUT", f"/api/v1/admin/users/{canary.user_id}/canary")
    before = await scrape(node)
    await canary.send_text("synthetic", to=peer.user_id)
    await peer.send_text("real", to=canary.user_id)
    after = await scrape(node)
    stored = 'type="text"'
    assert metric(after, "hubbub_messages_stored_total", stored) - metric(before, "hubbub_messages_stored_total", stored) == 1
    assert metric(after, "hubbub_connections", 'terminal="web"') == 2  # the admin and the peer
    assert metric(after, "hubbub_canary_connections") == 1
    assert metric(after, "hubbub_online_users") == 2

    await admin.api("DELETE", f"/api/v1/admin/users/{canary.user_id}/canary")
    await canary.send_text("counted again", to=peer.user_id)
    again = await scrape(node)
    assert metric(again, "hubbub_messages_stored_total", stored) - metric(after, "hubbub_messages_stored_total", stored) == 1
    assert metric(again, "hubbub_canary_connections") == 0
