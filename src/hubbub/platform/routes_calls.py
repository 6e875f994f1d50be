"""Calls: the ICE servers (STUN, and TURN with this user's credentials). Signalling is on the WebSocket."""

from __future__ import annotations

import time

from hubbub.platform.routing import Ctx, route
from hubbub.services.calls.ice import IceServers, ice_servers


@route(
    "GET",
    "/api/v1/calls/ice",
    summary="ICE servers for a call, with TURN credentials valid for ttl_s seconds",
    response=IceServers,
    tag="calls",
)
async def ice(ctx: Ctx) -> IceServers:
    return ice_servers(ctx.s.config, ctx.me, int(time.time()))
