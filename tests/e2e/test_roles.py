"""One composition root (hubbub/root.py) for every role and for the admin CLI; the role decides what is built
and started, not only which routes are mounted (issue 13.3)."""

from __future__ import annotations

from pathlib import Path

from hubbub.root import Root
from tests import conftest


async def test_each_role_starts_only_what_it_needs(make_node):
    full = await make_node(node_id="all")
    gateway = await make_node(role="gateway", node_id="gw", data_dir=full.config.data_dir)
    platform = await make_node(role="platform", node_id="pf", data_dir=full.config.data_dir)
    # connections are swept (heartbeats, auth deadline) only where there are connections
    assert full.hub.sweeping and gateway.hub.sweeping
    assert not platform.hub.sweeping
    # no WebSocket endpoint is built on a platform node
    assert full.gateway is not None and gateway.gateway is not None
    assert platform.gateway is None
    # every node reports its load and reads broadcasts (it is a member of the cluster)
    assert all(n.hub.on_broadcast is not None for n in (full, gateway, platform))
    # only a node with connections signals hot-group members
    assert full.signaller.audience is not None and gateway.signaller.audience is not None
    assert platform.signaller.audience is None
    # the database's housekeeping runs where the API is served; the call sweeper where connections are
    for node, api, ws in ((full, True, True), (gateway, False, True), (platform, True, False)):
        s = node.services
        assert (s.retention.running, s.exports.running, node.indexer.running) == (api, api, api), node.config.role
        assert s.calls.running == ws, node.config.role


def test_the_admin_cli_builds_only_what_it_uses(tmp_path: Path):
    root = Root(conftest.test_config(tmp_path), tool=True)
    admin = root.get_admin()
    assert root.get_admin() is admin  # cached: built once
    assert admin.groups is root.get_groups() and admin.ids is root.get_ids()
    # (messages is built: admin notices take the send path, MessageService.post; its batcher starts no task)
    for edge in ("hub", "gateway", "app", "metrics", "search", "calls", "retention", "exports"):
        assert not root.built(edge), edge


def test_two_roots_share_nothing(tmp_path: Path):
    one = Root(conftest.test_config(tmp_path, node_id="one"))
    two = Root(conftest.test_config(tmp_path, node_id="two"))
    assert one.get_routing() is not two.get_routing()
    assert one.get_services().messages is not two.get_services().messages
    assert one.get_services().messages is one.get_messages()
