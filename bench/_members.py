"""Lean group members over aiohttp for the group benchmarks (hot_groups.py, reaction_storm.py): one class and
the steps both runs take around their burst, written once.

A member is not the SDK: it keeps one group complete from ``msg`` pushes or ``news`` + ``pull`` and counts
frames, which is all a fan-out measurement needs.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import aiohttp
import msgspec

from _cluster import Cluster, token
from hubbub.core.clock import now_ms
from hubbub.core.ids import MessageIds
from hubbub.engines.storage.base import NewMessage

decode = msgspec.json.decode


class Member:
    """A lean client: auth, then keep the group complete from `msg` pushes or `news` + `pull`."""

    def __init__(self, uid: int, token: str, url: str, conv: str, total: int) -> None:
        self.uid, self.token, self.url, self.conv, self.total = uid, token, url, conv, total
        self.have = 0
        self.texts: dict[int, str] = {}
        self.pulling = False
        self.again = False
        self.done = asyncio.Event()
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.rid = 0
        self.frames = 0
        self.errors: list[dict] = []
        self.unacked: dict[str, str] = {}

    async def run(self, http: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        self.ws = ws = await http.ws_connect(self.url + "/ws", max_msg_size=0)
        await ws.send_str('{"type":"auth","token":"%s","terminal":"web"}' % self.token)
        async for msg in ws:
            self.frames += 1
            frame = decode(msg.data)
            kind = frame["type"]
            if kind == "auth_ok":
                ready.set()
            elif kind == "msg" and frame["msg"]["conv"] == self.conv:
                self.take([frame["msg"]])
                if frame["msg"]["seq"] > self.have:
                    self.pull()
            elif kind == "news" and frame["conv"] == self.conv and frame["seq"] > self.have:
                self.pull()
            elif kind == "error":
                # A real client retries a little later, with the same cmid for a send (an overloaded server
                # answers unavailable and stores nothing).
                self.errors.append(frame)
                rid = frame.get("rid")
                if isinstance(rid, str) and rid in self.unacked:
                    asyncio.get_running_loop().call_later(0.5, self.resend, rid)
                else:
                    self.pulling = False
                    asyncio.get_running_loop().call_later(0.5, self.pull)
            elif kind == "ack":
                self.unacked.pop(frame.get("rid"), None)
            elif kind == "messages":
                self.take(frame["messages"])
                self.pulling = False
                if frame["has_more"] or self.again:
                    self.again = False
                    self.pull()

    def take(self, messages: list[dict]) -> None:
        for m in messages:
            if m["seq"] not in self.texts:
                self.texts[m["seq"]] = m["body"].get("text", "")
        while self.have + 1 in self.texts:
            self.have += 1
        if self.have >= self.total:
            self.done.set()

    async def send(self, cmid: str, text: str) -> None:
        frame = '{"type":"send","cmid":"%s","rid":"%s","conv":"%s","body":{"text":"%s"}}' % (
            cmid,
            cmid,
            self.conv,
            text,
        )
        self.unacked[cmid] = frame
        assert self.ws is not None
        await self.ws.send_str(frame)

    def resend(self, cmid: str) -> None:
        frame = self.unacked.get(cmid)
        if frame is not None and self.ws is not None:
            asyncio.get_running_loop().create_task(self.ws.send_str(frame))

    def pull(self) -> None:
        if self.pulling:
            self.again = True
            return
        self.pulling = True
        self.rid += 1
        assert self.ws is not None
        asyncio.get_running_loop().create_task(
            self.ws.send_str(
                '{"type":"pull","conv":"%s","after_seq":%d,"limit":200,"rid":%d}'
                % (self.conv, self.have, self.rid)
            )
        )


def created_notice(ids: MessageIds) -> NewMessage:
    """The "group created" notice ``SqlStorage.create_group`` stores with a group seeded straight into the
    database (10,000 members through the API would take minutes)."""
    return NewMessage(
        id=ids.next(), conv="", sender=1, cmid="~bench", type="system", body={"event": "created"}, ts=now_ms()
    )


async def connect(
    cluster: Cluster, http: aiohttp.ClientSession, conv: str, count: int, have: int, total: int
) -> tuple[list[Member], list[asyncio.Task[None]]]:
    """Users 1..count online in ``conv`` (spread over the nodes, holding it up to ``have``), waiting for
    ``total``; connected 200 at a time (a thundering herd would measure the accept queue), then a second for
    presence and the registry to settle."""
    urls = cluster.urls
    members = [
        Member(uid, token(cluster.secret, uid), urls[uid % len(urls)], conv, total)
        for uid in range(1, count + 1)
    ]
    tasks = []
    for m in members:
        m.have = have
    for start in range(0, len(members), 200):
        readies = []
        for m in members[start : start + 200]:
            ready = asyncio.Event()
            readies.append(ready)
            tasks.append(asyncio.create_task(m.run(http, ready)))
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 300)
    await asyncio.sleep(1.0)
    return members, tasks


async def wait_complete(members: list[Member], total: int, mode: str, timeout: float) -> None:
    """Until every member holds seq ``total``; past ``timeout``, say who lags (the result then shows it)."""
    try:
        await asyncio.wait_for(asyncio.gather(*(m.done.wait() for m in members)), timeout)
    except TimeoutError:
        lagging = [m for m in members if not m.done.is_set()]
        print(f"  {mode}: {len(lagging)} members incomplete after {timeout} s", file=sys.stderr)
        for m in lagging[:3]:
            print(f"    uid {m.uid} have {m.have}/{total} errors {m.errors[-2:]}", file=sys.stderr)


async def disconnect(
    members: list[Member], tasks: list[asyncio.Task[None]], http: aiohttp.ClientSession
) -> None:
    for m in members:
        if m.ws is not None:
            await m.ws.close()
    for task in tasks:
        task.cancel()
    await http.close()


def print_table(results: dict[str, dict[str, Any]], width: int) -> None:
    """One column per mode, one row per figure."""
    names = list(next(iter(results.values())))
    print(f"\n{'':{width}}" + "".join(f"{mode:>14}" for mode in results))
    for name in names:
        print(f"{name:{width}}" + "".join(f"{results[mode][name]:>14.3f}" for mode in results))
