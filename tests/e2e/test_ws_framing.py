"""RFC 6455 framing at the gateway's socket, from a real client over a real socket: fragmented messages are
reassembled, pings answered, broken frames and oversized messages close with 1002 / 1009, and the close
handshake runs both ways. The client is ``websockets`` (its asyncio client sends fragments and pings); frames
it would never send are written to its transport by hand."""

import asyncio
import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hubbub.node import Node


def _url(node: Node) -> str:
    return f"ws://127.0.0.1:{node.port}/ws"


async def _closed_by_server(ws: ClientConnection) -> int:
    """Wait for the server to close; the code it sent."""
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.protocol.close_rcvd is not None
    return ws.protocol.close_rcvd.code


async def test_fragmented_message_is_reassembled(node, make_client):
    alice = await make_client("fragments", connect=False)
    auth = json.dumps({"type": "auth", "token": alice.access_token, "terminal": "web"})
    async with connect(_url(node), compression=None) as ws:
        third = len(auth) // 3
        await ws.send([auth[:third], auth[third : 2 * third], auth[2 * third :]])  # TEXT, CONT, CONT(fin)
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "auth_ok"
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"


async def test_protocol_ping_is_answered_with_a_pong(node):
    async with connect(_url(node), compression=None) as ws:
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)


async def test_unmasked_frame_closes_with_1002(node):
    async with connect(_url(node), compression=None) as ws:
        ws.transport.write(b"\x81\x02{}")  # FIN + TEXT, no mask bit: a client frame must be masked
        assert await _closed_by_server(ws) == 1002


async def test_continuation_without_a_start_closes_with_1002(node):
    async with connect(_url(node), compression=None) as ws:
        ws.transport.write(b"\x80\x82" + b"\x00\x00\x00\x00" + b"{}")  # FIN + CONT, masked with zeros
        assert await _closed_by_server(ws) == 1002


async def test_message_over_the_limit_across_fragments_closes_with_1009(node):
    half = "x" * (node.config.max_frame_bytes // 2 + 1)
    async with connect(_url(node), compression=None, max_size=None) as ws:
        await ws.send([half, half])  # each fragment fits, the message does not
        assert await _closed_by_server(ws) == 1009


async def test_peer_close_is_echoed(node):
    ws = await connect(_url(node), compression=None)
    await ws.close(code=4000, reason="bye")
    assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 4000
    assert (
        ws.protocol.close_rcvd_then_sent is False
    )  # the client's close went first; the server's is the echo
