"""The ceiling: a bare WebSocket echo on the library Hubbub's gateway uses (aiohttp, on uvloop like ``hubbub
serve``). Every text frame comes straight back to its sender; no JSON, no storage, no routing.

    python bench/echo_server.py --port 8099
"""

from __future__ import annotations

import argparse

from aiohttp import WSMsgType, web


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ws_echo(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=64 * 1024, autoping=True, heartbeat=None, compress=False)
    await ws.prepare(request)
    async for msg in ws:
        if msg.type is WSMsgType.TEXT:
            await ws.send_str(msg.data)
        elif msg.type is WSMsgType.BINARY:
            await ws.send_bytes(msg.data)
    return ws


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ws", ws_echo)
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover
        loop_factory = None
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        backlog=2048,
        loop=loop_factory() if loop_factory else None,
    )


if __name__ == "__main__":
    main()
