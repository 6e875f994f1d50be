"""Cache drops across nodes (services/broadcasts.py): a block, an unblock or a removed friendship made through
one node's ``FriendService`` is applied by every node's at once, over each routing engine's ``broadcast``
(in-process: the one node; Redis and Redis Cluster: three nodes). The caches' TTLs are raised to minutes
here, so only the broadcast can explain a node changing its answer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from hubbub.config import Config
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.storage.sql import SqlStorage
from hubbub.services import friends as friends_module
from hubbub.services.broadcasts import NodeBroadcasts
from hubbub.services.friends import FriendService
from hubbub.services.hot.news import News, encode_news
from tests.contract.nodes import FakeHub, MakeEngines, eventually, make_engines

__all__ = ["make_engines"]

NOW = 1_764_000_000_000


class ListeningHub(FakeHub):
    """A fake hub that hands every broadcast to the node's listener, as ``root.get_hub`` wires the real one."""

    def __init__(self) -> None:
        super().__init__()
        self.listener: Callable[[bytes], None] | None = None
        self.news: list[bytes] = []

    def broadcast(self, payload: bytes) -> None:
        super().broadcast(payload)
        if self.listener is not None:
            self.listener(payload)


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[SqlStorage]:
    made = SqlStorage(f"sqlite+aiosqlite:///{tmp_path / 'hubbub.db'}")
    await made.start()
    yield made
    await made.close()


@pytest.fixture(autouse=True)
def long_ttls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(friends_module, "BLOCK_CACHE_S", 600.0)
    monkeypatch.setattr(friends_module, "FRIENDSHIP_CACHE_S", 600.0)


async def nodes(make_engines: MakeEngines, storage: SqlStorage) -> list[tuple[FriendService, ListeningHub]]:
    """Each node's friendship service over the one database, hearing its node's broadcasts."""
    count = 1 if make_engines.kind == "memory" else 3  # type: ignore[attr-defined]
    made = []
    for i in range(1, count + 1):
        hub = ListeningHub()
        engines = await make_engines(f"n{i}", hub=hub)
        friends = FriendService(Config(), storage, engines.routing, engines.registry, MemoryRateLimiter())
        hub.listener = NodeBroadcasts(hub.news.append, friends.forget).heard
        made.append((friends, hub))
    return made


async def heard(made: list[tuple[FriendService, ListeningHub]], count: int) -> None:
    """Every node has heard ``count`` broadcasts: well inside a second, where the TTLs here are minutes."""
    await eventually(lambda: all(len(hub.broadcasts) >= count for _, hub in made), timeout=1.0)


async def ann_and_bob(
    make_engines: MakeEngines, storage: SqlStorage
) -> tuple[list[tuple[FriendService, ListeningHub]], list[FriendService], int, int]:
    """The nodes, their friendship services, and two fresh users on the shared database."""
    made = await nodes(make_engines, storage)
    a = (await storage.create_user("ann", "Ann", "h", NOW)).id
    b = (await storage.create_user("bob", "Bob", "h", NOW)).id
    return made, [f for f, _ in made], a, b


async def answers(
    services: list[FriendService], check: Callable[[FriendService], Awaitable[bool]]
) -> list[bool]:
    return [await check(s) for s in services]


async def test_a_block_and_an_unblock_apply_on_every_node_at_once(
    make_engines: MakeEngines, storage: SqlStorage
) -> None:
    made, services, a, b = await ann_and_bob(make_engines, storage)
    assert await answers(services, lambda f: f.blocking(a, b)) == [False] * len(services)  # cached "no"

    await storage.block(a, b, NOW)
    await services[0].block_changed(a, b)
    assert await services[0].blocking(b, a)  # the node that took it: before the call returned
    await heard(made, 1)
    assert await answers(services, lambda f: f.blocking(b, a)) == [True] * len(services)

    await storage.unblock(a, b)
    await services[-1].block_changed(b, a)  # either order of the pair, from any node
    await heard(made, 2)
    assert await answers(services, lambda f: f.blocking(a, b)) == [False] * len(services)


async def test_a_removed_friendship_applies_on_every_node_at_once(
    make_engines: MakeEngines, storage: SqlStorage
) -> None:
    made, services, a, b = await ann_and_bob(make_engines, storage)
    await storage.add_friendship(a, b, NOW)
    assert await answers(services, lambda f: f.are_friends(a, b)) == [True] * len(services)  # cached

    await services[0].remove(b, a)
    await heard(made, 1)
    assert await answers(services, lambda f: f.are_friends(a, b)) == [False] * len(services)


async def test_a_closed_accounts_friendships_drop_on_every_node(
    make_engines: MakeEngines, storage: SqlStorage
) -> None:
    """Account closing deletes the friendships in its transaction; every node then stops treating the two
    as friends at once, not when the cached answer expires."""
    made, services, a, b = await ann_and_bob(make_engines, storage)
    await storage.add_friendship(a, b, NOW)
    assert await answers(services, lambda f: f.are_friends(a, b)) == [True] * len(services)  # cached

    others = await storage.friend_ids(a)
    assert await storage.close_account(a, NOW) is not None
    await services[-1].friendships_ended(a, others)
    await heard(made, 1)
    assert await answers(services, lambda f: f.are_friends(b, a)) == [False] * len(services)


async def test_hot_group_news_still_reaches_its_listener(
    make_engines: MakeEngines, storage: SqlStorage
) -> None:
    """The two kinds share the channel: news goes to the hot groups unchanged, a drop never does."""
    made = await nodes(make_engines, storage)
    friends, hub = made[0]
    news = encode_news([News(conv="g:1", seq=3)])
    await friends.routing.broadcast(news)
    await friends.block_changed(1, 2)
    await heard(made, 2)
    assert [hub.news for _, hub in made] == [[news]] * len(made)
