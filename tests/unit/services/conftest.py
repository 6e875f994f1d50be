"""Services on the memory engines, without sockets: one node's services over a SQLite file, the memory routing engine,
rate limiter and hot-group state, a fake clock, and a sink that records every frame routing delivers.

A rule is tested here by calling the service and looking at what it stored and what it published; the e2e
tests drive the same rules through real sockets. The database is migrated once per session and copied for
each test (a copy is a millisecond; migrating is most of a second), so these tests run in seconds.

Building the services is in ``World`` alone, so a change to a constructor is fixed in one place.
"""

from __future__ import annotations

import shutil
import sys
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import pytest

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.core.ids import MessageIds
from hubbub.engines.blobs.local import LocalBlobStore
from hubbub.engines.cluster.memory import MemoryCluster
from hubbub.engines.hotgroups.memory import MemoryHotState
from hubbub.engines.ratelimit import memory as memory_limiter
from hubbub.engines.ratelimit.memory import MemoryRateLimiter
from hubbub.engines.registry.memory import MemoryRegistry
from hubbub.engines.routing.base import Event
from hubbub.engines.routing.memory import MemoryRouting
from hubbub.engines.storage.sql import SqlStorage
from hubbub.protocol.close_codes import Close
from hubbub.services import content
from hubbub.services.admin import AdminService
from hubbub.services.auth import AuthService
from hubbub.services.broadcasts import Forget, decode_forget, is_forget
from hubbub.services.canaries import Canaries
from hubbub.services.closing import AccountClosing
from hubbub.services.friends import FriendService
from hubbub.services.groups import GroupService
from hubbub.services.hot import HotGroups, HotPolicy
from hubbub.services.hot.news import News, decode_news
from hubbub.services.media import MediaService
from hubbub.services.messages import MessageService
from hubbub.services.passwords import Passwords
from hubbub.services.presence import PresenceService
from hubbub.services.words import WordFilter

#: When the users and friendships the helpers below make were created (2026-01-01T00:00:00Z).
EPOCH_MS = 1_767_225_600_000


class FakeClock:
    """Wall-clock milliseconds (``now_ms``) and a monotonic second count that move only when told.

    It starts at the real time, to the second: access tokens are JWTs, whose expiry PyJWT checks against the
    real clock, so an old token is made by setting this clock back, not by moving it on.
    """

    def __init__(self) -> None:
        self.ms = time.time_ns() // 1_000_000_000 * 1000
        self.mono = 1000.0

    def now_ms(self) -> int:
        return self.ms

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """Every ``now_ms`` the services and storage imported, and the monotonic clock of the pair caches
    (friendships, blocks) and the memory rate limiter. (Not ``time.monotonic`` itself: the event loop runs on it.)"""
    fake = FakeClock()
    for name, module in list(sys.modules.items()):
        if (
            name.startswith("hubbub.")
            and getattr(module, "now_ms", None) is not None
            and name != "hubbub.core.clock"
        ):
            monkeypatch.setattr(module, "now_ms", fake.now_ms)
    fake_time = types.SimpleNamespace(monotonic=fake.monotonic, time=lambda: fake.ms / 1000)
    monkeypatch.setattr(sys.modules["hubbub.services.pair_cache"], "time", fake_time)
    monkeypatch.setattr(memory_limiter, "time", fake_time)
    return fake


@dataclass
class Pushes:
    """Routing's local sink: what each user would have received on their sockets, decoded."""

    frames: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    closes: list[tuple[int, Close, str | None]] = field(default_factory=list)
    news: list[News] = field(default_factory=list)
    on_forget: Callable[[Forget], None] | None = None

    def deliver(self, events: Sequence[Event]) -> None:
        for event in events:
            frame = msgspec.json.decode(event.payload)
            self.frames.extend((user, frame) for user in event.recipients)

    def disconnect(
        self, user_id: int, code: Close, reason: str, conn_id: str | None, sid: str | None
    ) -> None:
        self.closes.append((user_id, code, sid))

    def broadcast(self, payload: bytes) -> None:
        if is_forget(payload):  # a cache drop: told straight to the services, as the root wires them
            if self.on_forget is not None:
                self.on_forget(decode_forget(payload))
            return
        self.news.extend(decode_news(payload))

    def to(self, user: int, kind: str | None = None) -> list[dict[str, Any]]:
        return [f for u, f in self.frames if u == user and (kind is None or f["type"] == kind)]

    def events(self, user: int) -> list[str]:
        """The ``event`` of each group notice (``msg`` frames of type ``system``) ``user`` was pushed."""
        return [f["msg"]["body"]["event"] for f in self.to(user, "msg") if f["msg"]["type"] == "system"]

    def clear(self) -> None:
        self.frames.clear()
        self.closes.clear()
        self.news.clear()


def unit_config(tmp_path: Path, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "data_dir": str(tmp_path / "data"),
        "argon2_time_cost": 1,
        "argon2_memory_kib": 256,
        "node_id": "unit",
        "jwt_secret": "unit-test-secret-that-is-long-enough-0123456789",
    }
    values.update(overrides)
    return Config(**values)


@dataclass
class World:
    """One node's services, built the way the composition root builds them, on memory engines."""

    config: Config
    storage: SqlStorage
    routing: MemoryRouting
    registry: MemoryRegistry
    pushes: Pushes
    limiter: MemoryRateLimiter
    friends: FriendService
    groups: GroupService
    auth: AuthService
    admin: AdminService
    presence: PresenceService
    rules: content.ContentRules
    passwords: Passwords

    @classmethod
    async def build(cls, config: Config, storage: SqlStorage) -> World:
        routing = MemoryRouting("unit")
        registry = MemoryRegistry("unit")
        pushes = Pushes()
        await routing.start(pushes)
        limiter = MemoryRateLimiter()
        friends = FriendService(config, storage, routing, registry, limiter)
        pushes.on_forget = friends.forget
        ids = MessageIds(config.effective_node_id)
        hot = HotGroups(config, storage, routing, MemoryHotState())
        media = MediaService(config, storage, LocalBlobStore(Path(config.data_dir) / "blobs"))
        words = WordFilter(config, storage)
        groups = GroupService(config, storage, routing, registry, limiter, friends, ids, hot, media)
        passwords = Passwords(config)
        rules = content.ContentRules(config, media, words)
        messages = MessageService(config, storage, routing, limiter, friends, ids, hot, rules)
        return cls(
            config=config,
            storage=storage,
            routing=routing,
            registry=registry,
            pushes=pushes,
            limiter=limiter,
            friends=friends,
            groups=groups,
            auth=AuthService(config, storage, routing, limiter, passwords),
            admin=AdminService(
                config,
                storage,
                routing,
                MemoryCluster("unit"),
                groups,
                words,
                ids,
                passwords,
                messages,
                AccountClosing(storage, routing, groups, friends, passwords),
                Canaries(config, storage),
            ),
            presence=PresenceService(storage, registry, routing),
            rules=rules,
            passwords=passwords,
        )

    async def user(self, name: str) -> int:
        """A user straight in storage (no password hashing: most tests do not log in)."""
        return (await self.storage.create_user(name, name.capitalize(), "not-a-hash", EPOCH_MS)).id

    async def users(self, *names: str) -> list[int]:
        return [await self.user(name) for name in names]

    async def befriend(self, *users: int) -> None:
        for i, a in enumerate(users):
            for b in users[i + 1 :]:
                if not await self.storage.are_friends(a, b):
                    await self.storage.add_friendship(a, b, EPOCH_MS)


async def refused(code: Code, call: Awaitable[object]) -> None:
    """Await ``call`` and check it is refused with ``code``."""
    with pytest.raises(HubbubError) as err:
        await call
    assert err.value.code == code


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import asyncio

    path = tmp_path_factory.mktemp("unit-db") / "template.db"

    async def migrate() -> None:
        storage = SqlStorage(f"sqlite+aiosqlite:///{path}")
        await storage.start()
        await storage.close()

    asyncio.run(migrate())
    return path


@pytest.fixture
async def world(tmp_path: Path, migrated_db: Path, clock: FakeClock) -> AsyncIterator[World]:
    db = tmp_path / "hubbub.db"
    shutil.copyfile(migrated_db, db)
    config = unit_config(tmp_path)
    storage = SqlStorage(f"sqlite+aiosqlite:///{db}", is_hot=HotPolicy.of(config).group_is_hot)
    made = await World.build(config, storage)
    yield made
    made.passwords.close()
    await made.routing.close()
    await made.registry.close()
    await storage.close()
