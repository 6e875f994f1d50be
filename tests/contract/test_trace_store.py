"""The trace store contract, on the in-memory ring (one node) and on Redis (a cluster): steps kept by
message and by conversation, message ids found by (sender, cmid), nothing kept past its TTL, and a bounded
ring. The tracer's timeline over each store: the message's own steps plus the pulls and reads covering it."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from hubbub.core.models import Message
from hubbub.engines.redis_link import RedisLink, connect
from hubbub.engines.routing.base import Event
from hubbub.engines.storage.base import NewMessage, Stored
from hubbub.proof.trace import MemoryTraceStore, RedisTraceStore, Tracer, TraceStore
from tests.contract.conftest import REDIS_FLAVOURS, redis_url

MakeStore = Callable[[int], TraceStore]


@pytest.fixture(params=["memory", *REDIS_FLAVOURS])
async def make_store(request: pytest.FixtureRequest) -> AsyncIterator[MakeStore]:
    made: list[TraceStore] = []
    prefix = "t" + secrets.token_hex(4)

    def make(ttl_s: int) -> TraceStore:
        if request.param != "memory":
            client = connect(redis_url(request), RedisLink())
            store: TraceStore = RedisTraceStore(client, ttl_s, prefix=prefix)
        else:
            store = MemoryTraceStore(ttl_s)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


def stored(
    at: int, sender: int = 5, cmid: str = "abc", conv: str = "p:5:6", seq: int = 1
) -> tuple[object, ...]:
    return ("s", at, "n1", at - 1, sender, cmid, conv, seq, False, False, [5, 6])


async def test_steps_by_message_conversation_and_key(make_store: MakeStore) -> None:
    store = make_store(60)
    await store.append([("m", "11", stored(2)), ("c", "p:5:6", ("r", 3, "n1", 6, 1))])
    await store.append([("m", "11", ("d", 4, "n1", [6], ["6/web"]))])
    steps = await store.message_steps("11")
    assert [s.step for s in steps] == ["received", "stored", "published", "delivered"]
    assert steps[1].seq == 1 and steps[2].users == [5, 6] and steps[3].terminals == ["6/web"]
    assert [s.user for s in await store.conv_steps("p:5:6")] == [6]
    assert await store.find(5, "abc") == "11"
    assert await store.find(5, "nope") is None
    assert await store.message_steps("12") == []


async def test_nothing_is_kept_past_the_ttl(make_store: MakeStore) -> None:
    store = make_store(1)
    await store.append([("m", "21", stored(1, cmid="x", sender=1)), ("c", "g:1", ("r", 1, "n1", 1, 1))])
    assert await store.message_steps("21")
    if isinstance(store, MemoryTraceStore):
        store.clock = lambda: 1e12  # a day later, without waiting a day
    else:
        await asyncio.sleep(2.1)
    assert await store.message_steps("21") == []
    assert await store.conv_steps("g:1") == []
    assert await store.find(1, "x") is None


async def test_the_ring_keeps_the_newest_messages() -> None:
    store = MemoryTraceStore(60, capacity=3)
    for i in range(5):
        await store.append([("m", str(i), stored(i, cmid=str(i)))])
    assert [bool(await store.message_steps(str(i))) for i in range(5)] == [False, False, True, True, True]


class Conn:
    def __init__(self, conn_id: str, terminal: str) -> None:
        self.conn_id = conn_id
        self.terminal = terminal


async def test_a_timeline_over_the_store(make_store: MakeStore) -> None:
    tracer = Tracer(make_store(60), "n1")
    mid = str(10**15 + secrets.randbelow(10**6))
    conv = f"p:{secrets.randbelow(10**6) + 7}:{10**7}"
    item = NewMessage(id=int(mid), conv=conv, sender=7, cmid="c1", type="text", body={"text": "secret"}, ts=100,
                      members=(7, 10**7))  # fmt: skip
    message = Message(
        id=mid, conv=conv, seq=3, sender=7, type="text", body={"text": "secret"}, ts=100, cmid="c1"
    )
    tracer.stored([item], [Stored(message=message, duplicate=False, recipients=(7, 10**7))])
    payload = b'{"type":"msg","msg":{"id":"' + mid.encode() + b'","conv":"x","body":{"text":"secret"}}}'
    tracer.delivered([Event([10**7, 99], payload)], {10**7: [Conn("a", "web"), Conn("b", "phone")]})
    tracer.pulled(10**7, conv, 0, 2)  # does not cover seq 3
    tracer.pulled(10**7, conv, 2, 5)
    tracer.read(10**7, conv, 2)  # before it
    tracer.read(10**7, conv, 4)
    tracer.read(10**7, conv, 5)  # the same reader again: only the first read past it counts
    found = await tracer.timeline(mid)
    assert found is not None
    assert (found.conv, found.seq, found.sender) == (conv, 3, 7)
    assert [s.step for s in found.steps] == ["received", "stored", "published", "delivered", "pulled", "read"]
    delivered = found.steps[3]
    assert delivered.users == [10**7] and delivered.terminals == [f"{10**7}/web", f"{10**7}/phone"]
    assert found.steps[-1].seq == 4
    by_key = await tracer.timeline(sender=7, cmid="c1")
    assert by_key is not None and by_key.message == mid
    assert "secret" not in repr(found)
    await tracer.close()


async def test_sampling_picks_by_id_and_zero_is_off() -> None:
    half = Tracer(MemoryTraceStore(60), "n1", sample=0.5)
    picked = [half.sampled(str(10**12 + i)) for i in range(1000)]
    assert sum(picked) == 500
    off = Tracer(MemoryTraceStore(60), "n1", sample=0)
    off.read(1, "p:1:2", 3)
    assert not off.on and off._buffer == []
