"""The canary: synthetic accounts that use a live cluster the way users do, forever, and prove each message
arrived exactly once and in order (``hubbub canary``; docs/operations.md, "Canary").

Accounts ``canary_0`` .. ``canary_<N-1>`` (created by an administrator's credentials with the ``canary`` flag,
so they are hidden from user search and purged by ``hubbub admin canary-purge``) spread over the nodes given,
one per node in turn. Every ``interval`` seconds it sends one marked message on each path:

- ``private``: between two accounts on different nodes (pushed);
- ``group``: a group of the accounts (pushed to every member);
- ``hot``: a group marked hot (push-pull: members are signalled and pull);
- ``offline``: to an account that is offline then, which comes back and syncs.

Each send is retried with the same cmid until acknowledged, as a client does. Messages older than ``grace``
seconds are checked with the exactly-once checker (hubbub/proof/checker.py) against what the server stores
and what every member holds; any finding counts in ``hubbub_canary_violations_total{kind}``. Metrics are
served on their own port (``/metrics``): sent, acknowledged, violations, end-to-end latency per path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hubbub.client import HubbubClient
from hubbub.client.sdk import ApiError, ClosedError
from hubbub.proof.checker import KINDS, Acked, Ledger, Refused, check

log = logging.getLogger("hubbub.canary")
PATHS = ("private", "group", "hot", "offline")
_RETRY = ("unavailable", "rate_limited")
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


@dataclass
class CanaryOptions:
    urls: list[str]
    admin_user: str
    admin_password: str
    #: The canary accounts' password (the same every run, so accounts are reused, not piled up).
    password: str
    users: int = 4
    interval_s: float = 2.0
    grace_s: float = 10.0
    #: Seconds to run; None: until stopped.
    duration_s: float | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 9464
    #: Every this many rounds, the offline account goes offline for a few sends and comes back.
    offline_every: int = 5


class CanaryMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sent = Counter("hubbub_canary_sent", "Canary messages sent, by path.", ["path"], registry=r)
        self.acked = Counter(
            "hubbub_canary_acked", "Canary messages acknowledged, by path.", ["path"], registry=r
        )
        self.checked = Counter(
            "hubbub_canary_checked", "Canary messages checked end to end.", ["path"], registry=r
        )
        self.violations = Counter(
            "hubbub_canary_violations", "Exactly-once violations found, by kind.", ["kind"], registry=r
        )
        self.failures = Counter(
            "hubbub_canary_failures", "Sends not acknowledged in time and checks that could not run.", ["what"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "hubbub_canary_latency_seconds", "From a canary send to its arrival at each recipient (push or pull).",
            ["path"], buckets=_BUCKETS, registry=r,
        )  # fmt: skip
        self.ack_latency = Histogram(
            "hubbub_canary_ack_seconds", "From a canary send to its acknowledgement.", ["path"], buckets=_BUCKETS,
            registry=r,
        )  # fmt: skip
        self.last_check = Gauge(
            "hubbub_canary_last_check_timestamp_seconds", "When a check last ran.", registry=r
        )
        for path in PATHS:  # every series from the start, for the alerts
            for metric in (self.sent, self.acked, self.checked):
                metric.labels(path)
        for kind in KINDS:
            self.violations.labels(kind)

    def total_violations(self) -> int:
        return int(sum(self.violations.labels(kind)._value.get() for kind in KINDS))


class CanaryClient(HubbubClient):
    """Notes when each message first arrived (push or pull) and since when the client is connected."""

    def __init__(self, urls: list[str]) -> None:
        super().__init__(urls, request_timeout=15.0)
        self.arrived: dict[str, float] = {}
        self.live: set[str] = set()
        self.connected_since: float | None = None

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == "msg":
            self.arrived.setdefault(frame["msg"]["id"], time.monotonic())
            self.live.add(frame["msg"]["id"])
        elif kind == "auth_ok":
            self.connected_since = None  # set once its sync is done (_after_connect)
        if kind != "msg" or frame.get("rid") is None:
            super()._on_frame(frame)
        if self.events.qsize() > 1000:  # nobody reads the queue: keep it small
            while not self.events.empty():
                self.events.get_nowait()

    async def _after_connect(self) -> None:
        await super()._after_connect()
        if self._ready.is_set():
            self.connected_since = time.monotonic()

    async def _session(self) -> None:
        try:
            await super()._session()
        finally:
            self.connected_since = None

    async def pull_all(self, conv: str) -> None:
        await super().pull_all(conv)
        now = time.monotonic()
        for msg in self.convs[conv].messages.values():
            self.arrived.setdefault(msg["id"], now)

    def settled(self, grace: float) -> bool:
        """Connected and synced for at least ``grace`` seconds: its copy should be complete."""
        return self.connected_since is not None and time.monotonic() - self.connected_since >= grace


@dataclass
class Path:
    name: str
    conv: str
    members: list[int]
    #: Index of the next sender among ``members``.
    turn: int = 0
    checked: int = 0
    acks: list[Acked] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


class Canary:
    def __init__(self, options: CanaryOptions, metrics: CanaryMetrics | None = None) -> None:
        if options.users < 4:
            raise ValueError("the canary needs at least 4 accounts")
        self.o = options
        self.metrics = metrics or CanaryMetrics()
        urls = options.urls
        self.clients = [
            CanaryClient(urls[i % len(urls) :] + urls[: i % len(urls)]) for i in range(options.users)
        ]
        self.paths: dict[str, Path] = {}
        self.sent_at: dict[str, tuple[float, str]] = {}
        self.rounds = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self.metrics_port: int | None = None

    # -- setup ------------------------------------------------------------------------------------
    async def setup(self) -> None:
        async with HubbubClient(self.o.urls) as admin:
            await admin.login(self.o.admin_user, self.o.admin_password)
            for i, client in enumerate(self.clients):
                await self._account(admin, client, f"canary_{i}")
        c = self.clients
        offline = len(c) - 1
        for i in range(1, len(c)):
            await _befriend(c[0], c[i])
        await _befriend(c[1], c[2])
        members = list(
            range(offline)
        )  # the offline account is in no group: a group is checked while all are on
        self.paths["private"] = Path("private", _private(c[1], c[2]), [1, 2])
        self.paths["offline"] = Path("offline", _private(c[0], c[offline]), [0])
        self.paths["group"] = Path("group", await self._group(c, members, "canary group", hot=False), members)
        self.paths["hot"] = Path("hot", await self._group(c, members, "canary hot group", hot=True), members)
        for client in c:
            await client.connect(timeout=30)
        for (
            path
        ) in self.paths.values():  # check from now on: the history of earlier runs is not ours to judge
            stored = await self._truth(path, 0)
            path.checked = stored[-1]["seq"] if stored else 0

    async def _account(self, admin: HubbubClient, client: CanaryClient, username: str) -> None:
        try:
            await client.login(username, self.o.password)
        except ApiError as exc:
            if exc.code != "invalid_credentials" and exc.status != 401:
                raise
            body = {"username": username, "password": self.o.password, "canary": True}
            await admin.api("POST", "/api/v1/admin/users", body)
            await client.login(username, self.o.password)
        await admin.api("PUT", f"/api/v1/admin/users/{client.user_id}/canary")

    async def _group(self, c: Sequence[CanaryClient], members: list[int], name: str, hot: bool) -> str:
        owner = c[members[0]]
        mine = await owner.api("GET", "/api/v1/groups")
        for group in mine["groups"]:
            if group.get("name") == name and not group.get("dismissed"):
                return str(group["conv"])
        group = await owner.api(
            "POST", "/api/v1/groups", {"name": name, "members": [c[m].user_id for m in members[1:]]}
        )
        if hot:
            await owner.api("PATCH", f"/api/v1/groups/{group['id']}", {"hot": True})
        return str(group["conv"])

    # -- the loop ---------------------------------------------------------------------------------
    async def run(self) -> None:
        """Set up, then a round every ``interval`` until ``duration`` (or forever)."""
        await self.start_metrics()
        await self.setup()
        loop = asyncio.get_running_loop()
        end = None if self.o.duration_s is None else loop.time() + self.o.duration_s
        try:
            while end is None or loop.time() < end:
                await self.round()
                await asyncio.sleep(self.o.interval_s)
            await self.drain()
        finally:
            await self.close()

    async def round(self) -> None:
        self.rounds += 1
        for name in ("private", "group", "hot"):
            path = self.paths[name]
            sender = path.members[path.turn % len(path.members)]
            path.turn += 1
            self._spawn(self._send(path, sender))
        if self.rounds % self.o.offline_every == 0:
            self._spawn(self._offline_cycle())
        await self.verify()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, path: Path, sender: int) -> None:
        client = self.clients[sender]
        cmid = "canary-" + secrets.token_hex(8)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        deadline = loop.time() + 60
        self.metrics.sent.labels(path.name).inc()
        while True:
            try:
                ack = await client.send_text(f"canary {path.name} {cmid}", conv=path.conv, cmid=cmid,
                                             timeout=max(1.0, deadline - loop.time()))  # fmt: skip
                break
            except ApiError as exc:
                if exc.code in _RETRY and loop.time() < deadline:
                    await asyncio.sleep(random.uniform(0.2, 1.0))
                    continue
                self.metrics.failures.labels("send_refused").inc()
                log.warning("canary send refused: %s", exc)
                return
            except (TimeoutError, ClosedError, ConnectionError, aiohttp.ClientError) as exc:
                self.metrics.failures.labels("send_unacknowledged").inc()
                log.warning("canary send not acknowledged in time: %r", exc)
                return
        now = time.monotonic()
        self.metrics.acked.labels(path.name).inc()
        self.metrics.ack_latency.labels(path.name).observe(now - started)
        path.acks.append(Acked(ack["conv"], ack["seq"], ack["id"], client.user_id, cmid, started, now))
        self.sent_at[ack["id"]] = (started, path.name)

    async def _offline_cycle(self) -> None:
        """The offline account leaves, two messages are sent to it, it comes back and syncs."""
        away = self.clients[-1]
        await away.disconnect()
        path = self.paths["offline"]
        await self._send(path, 0)
        await self._send(path, 0)
        await asyncio.sleep(self.o.interval_s)
        with contextlib.suppress(Exception):
            await away.connect(timeout=30)

    # -- checking ---------------------------------------------------------------------------------
    async def verify(self, grace: float | None = None) -> None:
        """Check every path's messages acknowledged more than ``grace`` seconds ago, once each member has been
        connected (and synced) for ``grace`` seconds."""
        grace = self.o.grace_s if grace is None else grace
        now = time.monotonic()
        for path in self.paths.values():
            holders = self._holders(path)
            if not all(self.clients[i].settled(grace) for i in holders):
                continue
            ready = [a for a in path.acks if a.acked_at <= now - grace]
            if not ready:
                continue
            upto = max(a.seq for a in ready)
            try:
                stored = [m for m in await self._truth(path, path.checked) if m["seq"] <= upto]
            except (ApiError, aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.metrics.failures.labels("check_unavailable").inc()
                log.warning("canary check of %s postponed: %r", path.name, exc)
                continue
            first = path.checked + 1
            window = [a for a in path.acks if first <= a.seq <= upto]
            copies = {
                (self.clients[i].user_id, path.conv): [
                    m for m in self.clients[i].history(path.conv) if first <= m["seq"] <= upto
                ]
                for i in holders
            }
            verdict = check(
                {path.conv: stored}, Ledger(window, path.refused), copies, first_seq={path.conv: first}
            )
            for kind, n in verdict.violations.items():
                self.metrics.violations.labels(kind).inc(n)
            for problem in verdict.problems:
                log.error("canary violation on %s: %s", path.name, problem)
            self._observe_latency(path, holders, window)
            self.metrics.checked.labels(path.name).inc(len(window))
            path.checked = upto
            path.acks = [a for a in path.acks if a.seq > upto]
            path.refused = []
        self.metrics.last_check.set_to_current_time()

    def _holders(self, path: Path) -> list[int]:
        if path.name == "offline":
            return [0, len(self.clients) - 1]
        return path.members

    def _observe_latency(self, path: Path, holders: list[int], window: list[Acked]) -> None:
        for ack in window:
            started, name = self.sent_at.pop(ack.id, (None, path.name))
            if started is None:
                continue
            for i in holders:
                client = self.clients[i]
                if client.user_id != ack.sender and ack.id in client.arrived:
                    self.metrics.latency.labels(name).observe(max(0.0, client.arrived.pop(ack.id) - started))

    async def _truth(self, path: Path, after: int) -> list[dict[str, Any]]:
        """The conversation as stored, from ``after`` + 1 on, read over HTTP by a member."""
        reader = self.clients[path.members[0]]
        out: list[dict[str, Any]] = []
        while True:
            page = await reader.api(
                "GET", f"/api/v1/conversations/{path.conv}/messages", after_seq=after, limit=200
            )
            out += page["messages"]
            if not page["messages"] or not page["has_more"]:
                return out
            after = page["messages"][-1]["seq"]

    async def drain(self) -> None:
        """Let sends in flight finish and every member settle, then check what is left."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=90)
        away = self.clients[-1]
        if away._runner is None or away._runner.done():
            with contextlib.suppress(Exception):
                await away.connect(timeout=30)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while any(p.acks for p in self.paths.values()) and loop.time() < deadline:
            await asyncio.sleep(1)
            await self.verify(grace=2.0)

    # -- metrics ----------------------------------------------------------------------------------
    async def start_metrics(self) -> None:
        async def metrics(_request: web.Request) -> web.Response:
            return web.Response(
                body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
            )

        app = web.Application()
        app.router.add_get("/metrics", metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.o.metrics_host, self.o.metrics_port, reuse_address=True)
        await site.start()
        for address in self._runner.addresses:
            self.metrics_port = int(address[1])

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        if self._runner is not None:
            await self._runner.cleanup()


def _private(a: HubbubClient, b: HubbubClient) -> str:
    x, y = sorted((a.user_id, b.user_id))
    return f"p:{x}:{y}"


async def _befriend(a: HubbubClient, b: HubbubClient) -> None:
    with contextlib.suppress(ApiError):  # already friends (a reused account)
        await a.befriend(b)


async def run_canary(options: CanaryOptions) -> int:
    """``hubbub canary``: run until stopped (or ``duration``); the violations found (exit status 1 if any)."""
    canary = Canary(options)
    await canary.run()
    return canary.metrics.total_violations()
