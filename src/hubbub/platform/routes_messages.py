"""Messages over HTTP, for bots and scripts; the same service calls as the WebSocket frames."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import Meta

from hubbub.core.convs import ConvField, validate
from hubbub.core.errors import Code, HubbubError
from hubbub.core.ids import IdField, SeqField
from hubbub.core.models import Ack, Conversation, Message
from hubbub.platform.routing import Ctx, route


class SendBody(msgspec.Struct, kw_only=True):
    cmid: Annotated[str, Meta(min_length=1, max_length=64)]
    body: dict[str, Any]
    type: Annotated[str, Meta(max_length=16)] = "text"
    to: IdField | None = None
    conv: ConvField | None = None


class ReadBody(msgspec.Struct, kw_only=True):
    seq: SeqField


class ReadResult(msgspec.Struct):
    conv: str
    read_seq: int


class ConversationList(msgspec.Struct):
    conversations: list[Conversation]


class MessagePage(msgspec.Struct):
    messages: list[Message]
    has_more: bool


@route(
    "POST",
    "/api/v1/messages",
    summary="Send a message (idempotent on cmid)",
    body=SendBody,
    response=Ack,
    tag="messages",
)
async def send(ctx: Ctx) -> Ack:
    b: SendBody = ctx.body
    conv = validate(b.conv) if b.conv is not None else None
    stored = await ctx.s.messages.enqueue(
        ctx.me, to=b.to, conv=conv, cmid=b.cmid, msg_type=b.type, body=b.body
    )
    return Ack.of(await stored)


@route(
    "GET",
    "/api/v1/conversations",
    summary="My conversation list (the sync result)",
    response=ConversationList,
    tag="messages",
)
async def conversations(ctx: Ctx) -> ConversationList:
    return ConversationList(conversations=await ctx.s.messages.conversations(ctx.me))


@route(
    "GET",
    "/api/v1/conversations/{conv}/messages",
    summary="Messages after or before a seq",
    response=MessagePage,
    tag="messages",
    query={
        "after_seq": "forward from here (exclusive)",
        "before_seq": "backward from here (exclusive)",
        "limit": "1-200, default 50",
    },
)
async def messages(ctx: Ctx) -> MessagePage:
    conv = ctx.path_conv()
    limit = ctx.query_int("limit", 50, 1, 200) or 50
    after = ctx.query_seq("after_seq")
    before = ctx.query_seq("before_seq")
    if after is not None and before is not None:
        raise HubbubError(Code.INVALID_FIELD, "after_seq: give after_seq or before_seq, not both")
    if after is not None:
        found, more = await ctx.s.messages.pull(ctx.me, conv, after, limit)
    else:
        found, more = await ctx.s.messages.history(ctx.me, conv, before, limit)
    return MessagePage(messages=found, has_more=more)


@route(
    "POST",
    "/api/v1/conversations/{conv}/read",
    summary="Mark read up to a seq",
    body=ReadBody,
    response=ReadResult,
    tag="messages",
)
async def read(ctx: Ctx) -> ReadResult:
    conv = ctx.path_conv()
    return ReadResult(conv=conv, read_seq=await ctx.s.messages.mark_read(ctx.me, conv, ctx.body.seq))


@route(
    "POST",
    "/api/v1/conversations/{conv}/messages/{seq}/recall",
    summary="Recall my message",
    response=Message,
    tag="messages",
)
async def recall(ctx: Ctx) -> Message:
    conv = ctx.path_conv()
    return await ctx.s.messages.recall(ctx.me, conv, ctx.path_int("seq"))
