"""Web Push: the server's public key, this user's devices, their push settings, and the wake-up fetch
(docs/protocol.md, "Web Push")."""

from __future__ import annotations

import msgspec

from hubbub.engines.storage.base_push import PushDevice, PushJob, PushPrefs
from hubbub.platform.routing import Ctx, route
from hubbub.services.webpush.service import Subscription


class PushKey(msgspec.Struct, kw_only=True):
    #: The VAPID public key, base64url: ``applicationServerKey`` of ``pushManager.subscribe``.
    public_key: str
    enabled: bool
    #: Device kinds this server can push to (``webpush``, and ``fcm`` when configured).
    kinds: list[str]


class DeviceView(msgspec.Struct, kw_only=True):
    id: str
    kind: str
    label: str
    created_at: int
    last_ok_at: int
    #: Subscribed by the session making this request.
    current: bool

    @classmethod
    def of(cls, device: PushDevice, sid: str) -> DeviceView:
        return cls(
            id=device.id,
            kind=device.kind,
            label=device.label,
            created_at=device.created_at,
            last_ok_at=device.last_ok_at,
            current=device.sid == sid,
        )


class DeviceList(msgspec.Struct):
    devices: list[DeviceView]


class WakeRequest(msgspec.Struct, kw_only=True):
    endpoint: str


class Notification(msgspec.Struct, kw_only=True):
    conv: str
    seq: int
    count: int
    title: str
    body: str
    mention: bool
    tag: str


class WakeResult(msgspec.Struct):
    notifications: list[Notification]


@route(
    "GET",
    "/api/v1/push/key",
    summary="The server's VAPID public key for push subscriptions",
    response=PushKey,
    tag="push",
)
async def key(ctx: Ctx) -> PushKey:
    push = ctx.s.webpush
    return PushKey(
        public_key=push.keys.public_key, enabled=ctx.s.config.push_enabled, kinds=sorted(push.senders)
    )


@route(
    "POST",
    "/api/v1/push/devices",
    summary="Subscribe this session's device to push notifications (again: the same endpoint is updated)",
    body=Subscription,
    response=DeviceView,
    status=201,
    tag="push",
)
async def subscribe(ctx: Ctx) -> DeviceView:
    assert ctx.principal is not None
    device = await ctx.s.webpush.subscribe(ctx.me, ctx.principal.sid, ctx.body)
    return DeviceView.of(device, ctx.principal.sid)


@route(
    "GET", "/api/v1/push/devices", summary="My devices that receive pushes", response=DeviceList, tag="push"
)
async def devices(ctx: Ctx) -> DeviceList:
    assert ctx.principal is not None
    sid = ctx.principal.sid
    return DeviceList([DeviceView.of(d, sid) for d in await ctx.s.webpush.devices(ctx.me)])


@route(
    "DELETE",
    "/api/v1/push/devices/{device_id}",
    summary="Stop pushing to one of my devices",
    status=204,
    tag="push",
)
async def unsubscribe(ctx: Ctx) -> None:
    await ctx.s.webpush.unsubscribe(ctx.me, ctx.request.match_info["device_id"])


@route("GET", "/api/v1/push/prefs", summary="My push settings", response=PushPrefs, tag="push")
async def prefs(ctx: Ctx) -> PushPrefs:
    return await ctx.s.webpush.prefs(ctx.me)


@route(
    "PUT",
    "/api/v1/push/prefs",
    summary="Change my push settings",
    body=PushPrefs,
    response=PushPrefs,
    tag="push",
)
async def set_prefs(ctx: Ctx) -> PushPrefs:
    return await ctx.s.webpush.set_prefs(ctx.me, ctx.body)


@route(
    "POST",
    "/api/v1/push/wake",
    summary="What a device's notifications say now (its service worker, after a wake-up push); the "
    "subscription's endpoint identifies it",
    body=WakeRequest,
    response=WakeResult,
    auth=False,
    tag="push",
)
async def wake(ctx: Ctx) -> WakeResult:
    jobs: list[PushJob] = await ctx.s.webpush.wake(ctx.body.endpoint)
    return WakeResult(
        [
            Notification(
                conv=j.conv,
                seq=j.seq,
                count=j.count,
                title=j.title,
                body=j.text,
                mention=j.mention,
                tag=f"conv:{j.conv}",
            )
            for j in jobs
        ]
    )
