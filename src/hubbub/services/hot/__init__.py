"""Hot groups (push-pull delivery), in one place: what makes a group hot, who may pull, whom to signal.

- ``news``: what a node tells every node about a group, encoded as an opaque node broadcast;
- ``policy``: the one definition of hot (the owner's flag or the member count) and the member cap;
- ``rosters``: this node's cache of hot groups' members, dropped by every group change on every node;
- ``pulls``: serving pulls from the recent-message cache, then the database;
- ``signals``: coalesced ``news`` signals to every live terminal that is behind (pure logic; the gateway
  only writes the bytes);
- ``service``: ``HotGroups``, the entry point the other services and the node use.

The engines underneath are ``engines/hotgroups`` (the recent-message cache) and ``Routing.broadcast`` (news to
every node, as opaque bytes). Docs: docs/architecture.md, "Hot groups".
"""

from hubbub.services.hot.policy import HotPolicy
from hubbub.services.hot.service import HotGroups

__all__ = ["HotGroups", "HotPolicy"]
