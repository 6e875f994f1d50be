"""Message actions over HTTP (docs/protocol.md, "Message actions"): the same service calls as the WebSocket
frames ``edit``, ``react``, ``pin``, ``forward`` and ``hide``, plus the reads only HTTP serves (edit history,
who reacted, the pinned list, my hidden seqs)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from hubbub.core.convs import validate
from hubbub.core.errors import invalid
from hubbub.core.ids import IdField, SeqField
from hubbub.core.models import Ack, Message
from hubbub.platform.routing import Ctx, route
from hubbub.protocol.frames import ForwardItem

Aid = Annotated[str, Meta(min_length=1, max_length=64)]


class EditBody(msgspec.Struct, kw_only=True):
    aid: Aid
    text: str
    mentions: Annotated[list[IdField], Meta(max_length=50)] | None = None
    mention_all: bool = False


class Version(msgspec.Struct):
    text: str
    ts: int


class EditHistory(msgspec.Struct):
    conv: str
    seq: int
    #: Oldest (the original) first, the current text last.
    edits: list[Version]


class ReactBody(msgspec.Struct, kw_only=True):
    emoji: Annotated[str, Meta(min_length=1, max_length=64)]
    on: bool = True


class Reaction(msgspec.Struct):
    emoji: str
    count: int
    #: The first users who reacted (at most 10); all of them: GET .../reactions?emoji=
    users: list[int]


class ReactResult(msgspec.Struct):
    conv: str
    seq: int
    reactions: list[Reaction]
    #: The ``reaction`` event, or null when nothing changed.
    event: Message | None


class Reactors(msgspec.Struct):
    conv: str
    seq: int
    emoji: str
    users: list[int]
    next_after: int | None


class PinBody(msgspec.Struct, kw_only=True):
    on: bool = True


class PinResult(msgspec.Struct):
    conv: str
    seq: int
    pinned: bool
    event: Message | None


class PinView(msgspec.Struct):
    seq: int
    by: int
    ts: int
    message: Message


class PinList(msgspec.Struct):
    conv: str
    pins: list[PinView]


class ForwardBody(msgspec.Struct, kw_only=True):
    aid: Aid
    items: Annotated[list[ForwardItem], Meta(min_length=1, max_length=100)]
    targets: Annotated[list[str], Meta(min_length=1, max_length=100)]
    show_sender: bool = False


class ForwardResult(msgspec.Struct):
    acks: list[Ack]


class HideBody(msgspec.Struct, kw_only=True):
    seqs: Annotated[list[SeqField], Meta(min_length=1, max_length=100)]


class SeqList(msgspec.Struct):
    conv: str
    seqs: list[int]


_MESSAGE = "/api/v1/conversations/{conv}/messages/{seq}"


@route(
    "POST", f"{_MESSAGE}/edit", summary="Edit my text message", body=EditBody, response=Message, tag="actions"
)
async def edit(ctx: Ctx) -> Message:
    b: EditBody = ctx.body
    return await ctx.s.actions.edit(
        ctx.me,
        ctx.path_conv(),
        ctx.path_int("seq"),
        aid=b.aid,
        text=b.text,
        mentions=b.mentions,
        mention_all=b.mention_all,
    )


@route("GET", f"{_MESSAGE}/edits", summary="A message's edit history", response=EditHistory, tag="actions")
async def edits(ctx: Ctx) -> EditHistory:
    conv, seq = ctx.path_conv(), ctx.path_int("seq")
    versions = await ctx.s.actions.edits(ctx.me, conv, seq)
    return EditHistory(conv=conv, seq=seq, edits=[Version(text, ts) for text, ts in versions])


@route(
    "POST",
    f"{_MESSAGE}/reactions",
    summary="Add or remove my reaction",
    body=ReactBody,
    response=ReactResult,
    tag="actions",
)
async def react(ctx: Ctx) -> ReactResult:
    b: ReactBody = ctx.body
    conv, seq = ctx.path_conv(), ctx.path_int("seq")
    result = await ctx.s.actions.react(ctx.me, conv, seq, b.emoji, b.on)
    reactions = msgspec.convert(result.target.body.get("reactions", []), list[Reaction])
    event = result.stored.message if result.stored is not None else None
    return ReactResult(conv=conv, seq=seq, reactions=reactions, event=event)


@route(
    "GET",
    f"{_MESSAGE}/reactions",
    summary="Who reacted with an emoji",
    response=Reactors,
    tag="actions",
    query={
        "emoji": "the emoji (required)",
        "after": "user id cursor, default 0",
        "limit": "1-200, default 100",
    },
)
async def reactors(ctx: Ctx) -> Reactors:
    conv, seq = ctx.path_conv(), ctx.path_int("seq")
    after = ctx.query_seq("after") or 0  # (ids first: a bad one is invalid_id whatever else is wrong)
    limit = ctx.query_int("limit", 100, 1, 200) or 100
    emoji = ctx.request.query.get("emoji", "")
    if not 1 <= len(emoji) <= 64:
        raise invalid("emoji", "is required")
    users = await ctx.s.actions.reaction_users(ctx.me, conv, seq, emoji, after, limit + 1)
    more = len(users) > limit
    return Reactors(
        conv=conv, seq=seq, emoji=emoji, users=users[:limit], next_after=users[limit - 1] if more else None
    )


@route(
    "POST",
    f"{_MESSAGE}/pin",
    summary="Pin or unpin a message",
    body=PinBody,
    response=PinResult,
    tag="actions",
)
async def pin(ctx: Ctx) -> PinResult:
    conv, seq = ctx.path_conv(), ctx.path_int("seq")
    on = ctx.body.on
    result = await ctx.s.actions.pin(ctx.me, conv, seq, on)
    event = result.stored.message if result.stored is not None else None
    return PinResult(conv=conv, seq=seq, pinned=on, event=event)


@route("GET", "/api/v1/conversations/{conv}/pins", summary="Pinned messages", response=PinList, tag="actions")
async def pins(ctx: Ctx) -> PinList:
    conv = ctx.path_conv()
    found = await ctx.s.actions.pins(ctx.me, conv)
    return PinList(conv=conv, pins=[PinView(p.seq, p.by, p.ts, m) for p, m in found])


@route(
    "POST",
    "/api/v1/messages/forward",
    summary="Forward messages",
    body=ForwardBody,
    response=ForwardResult,
    tag="actions",
)
async def forward(ctx: Ctx) -> ForwardResult:
    b: ForwardBody = ctx.body
    targets = [validate(target, "targets") for target in b.targets]
    stored = await ctx.s.actions.forward(
        ctx.me,
        aid=b.aid,
        items=[(item.conv, item.seq) for item in b.items],
        targets=targets,
        show_sender=b.show_sender,
    )
    return ForwardResult(acks=[Ack.of(m) for m in stored])


@route(
    "POST",
    "/api/v1/conversations/{conv}/hide",
    summary="Delete messages for me",
    body=HideBody,
    response=SeqList,
    tag="actions",
)
async def hide(ctx: Ctx) -> SeqList:
    conv = ctx.path_conv()
    return SeqList(conv=conv, seqs=await ctx.s.actions.hide(ctx.me, conv, ctx.body.seqs))


@route(
    "GET",
    "/api/v1/conversations/{conv}/hidden",
    summary="Messages I deleted for me",
    response=SeqList,
    tag="actions",
)
async def hidden(ctx: Ctx) -> SeqList:
    conv = ctx.path_conv()
    return SeqList(conv=conv, seqs=await ctx.s.actions.hidden(ctx.me, conv))
