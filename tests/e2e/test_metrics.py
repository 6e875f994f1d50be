"""Operations endpoints: metrics move as traffic flows; liveness and readiness answer."""

import aiohttp

from tests.conftest import base_url, friends


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
