"""Every WebSocket frame, both directions, as msgspec Structs tagged by ``type``.

Client frames are decoded straight into these (validation included) by one compiled decoder; server
frames are encoded from them. Field limits here are the protocol's limits. Ids are checked as they are
decoded: a ``conv`` that is not a canonical conversation id raises ``invalid_id`` (a HubbubError, which
msgspec lets through) out of the decoder, so no handler ever sees one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from hubbub.core.convs import ConvField, validate
from hubbub.core.ids import IdField, SeqField
from hubbub.core.models import Ack, Conversation, Message, Terminal, User

Rid = str | int | None
Cmid = Annotated[str, Meta(min_length=1, max_length=64)]
ConvId = ConvField  # checked in ClientFrame.__post_init__
Seq = SeqField
Limit = Annotated[int, Meta(ge=1, le=200)]
UserId = IdField


class ClientFrame(msgspec.Struct, tag_field="type", forbid_unknown_fields=False):
    def __post_init__(self) -> None:
        conv = getattr(self, "conv", None)
        if conv is not None:
            validate(conv)


class Auth(ClientFrame, tag="auth"):
    token: Annotated[str, Meta(max_length=4096)]
    #: Required: a default would let a phone that forgot it take the web tab's slot (4409) by surprise.
    terminal: Terminal
    rid: Rid = None


class Ping(ClientFrame, tag="ping"):
    rid: Rid = None


class Send(ClientFrame, tag="send"):
    cmid: Cmid
    body: dict[str, Any]
    msg_type: Annotated[str, Meta(max_length=16)] = "text"
    to: UserId | None = None
    conv: ConvId | None = None
    rid: Rid = None


class Sync(ClientFrame, tag="sync"):
    rid: Rid = None


class Pull(ClientFrame, tag="pull"):
    conv: ConvId
    after_seq: Seq = 0
    limit: Limit = 100
    rid: Rid = None


class History(ClientFrame, tag="history"):
    conv: ConvId
    before_seq: Seq | None = None
    limit: Limit = 50
    rid: Rid = None


class Read(ClientFrame, tag="read"):
    conv: ConvId
    seq: Seq
    rid: Rid = None


class Recall(ClientFrame, tag="recall"):
    conv: ConvId
    seq: Seq
    rid: Rid = None


class Typing(ClientFrame, tag="typing"):
    conv: ConvId


class Receipts(ClientFrame, tag="receipts"):
    conv: ConvId
    seq: Seq
    rid: Rid = None


# -- message actions (docs/protocol.md, "Message actions"; the rules are services/actions.py) ------------------
class Edit(ClientFrame, tag="edit"):
    #: The action id: a retried edit with the same one returns the same event.
    aid: Cmid
    conv: ConvId
    seq: Seq
    text: str
    mentions: Annotated[list[UserId], Meta(max_length=50)] | None = None
    mention_all: bool = False
    rid: Rid = None


class React(ClientFrame, tag="react"):
    conv: ConvId
    seq: Seq
    emoji: Annotated[str, Meta(min_length=1, max_length=64)]
    #: False removes the caller's reaction.
    on: bool = True
    rid: Rid = None


class Pin(ClientFrame, tag="pin"):
    conv: ConvId
    seq: Seq
    on: bool = True
    rid: Rid = None


class ForwardItem(msgspec.Struct, forbid_unknown_fields=False):
    conv: ConvId
    seq: Seq

    def __post_init__(self) -> None:
        validate(self.conv)


class Forward(ClientFrame, tag="forward"):
    aid: Cmid
    #: The frame's bounds are wide; the server's limits (``forward_max_items``/``_targets``) are checked by
    #: the service, so the refusal names them.
    items: Annotated[list[ForwardItem], Meta(min_length=1, max_length=100)]
    targets: Annotated[list[ConvId], Meta(min_length=1, max_length=100)]
    show_sender: bool = False
    rid: Rid = None

    def __post_init__(self) -> None:
        for target in self.targets:
            validate(target)


class Hide(ClientFrame, tag="hide"):
    conv: ConvId
    seqs: Annotated[list[Seq], Meta(min_length=1, max_length=100)]
    rid: Rid = None


# -- calls (docs/protocol.md, "Calls"; the rules are services/calls/machine.py) ------------------------------
CallId = Annotated[str, Meta(min_length=1, max_length=64)]
Media = Literal["audio", "video"]


class CallInvite(ClientFrame, tag="call_invite"):
    to: UserId
    media: Media = "audio"
    rid: Rid = None


class CallRing(ClientFrame, tag="call_ring"):
    """The callee's device is ringing: the caller hears ``call_ringing``."""

    call: CallId
    rid: Rid = None


class CallAccept(ClientFrame, tag="call_accept"):
    call: CallId
    rid: Rid = None


class CallReject(ClientFrame, tag="call_reject"):
    call: CallId
    rid: Rid = None


class CallCancel(ClientFrame, tag="call_cancel"):
    call: CallId
    rid: Rid = None


class CallHangup(ClientFrame, tag="call_hangup"):
    call: CallId
    rid: Rid = None


class CallResume(ClientFrame, tag="call_resume"):
    """The device in an answered call reconnected: move the call to this connection (same terminal only)."""

    call: CallId
    rid: Rid = None


class CallSdp(ClientFrame, tag="call_sdp"):
    """An SDP offer or answer for the peer's device in the call (renegotiation is a new offer)."""

    call: CallId
    kind: Literal["offer", "answer"]
    #: Its size is checked by the call rules (``too_large``), not here, so the refusal names the limit.
    sdp: str
    rid: Rid = None


class CallIce(ClientFrame, tag="call_ice"):
    """An ICE candidate (``RTCIceCandidateInit``) for the peer's device; null ends the candidates."""

    call: CallId
    candidate: dict[str, Any] | None = None
    rid: Rid = None


CallFrame = (
    CallInvite | CallRing | CallAccept | CallReject | CallCancel | CallHangup | CallResume | CallSdp | CallIce
)

AnyClientFrame = (
    Auth
    | Ping
    | Send
    | Sync
    | Pull
    | History
    | Read
    | Recall
    | Typing
    | Receipts
    | Edit
    | React
    | Pin
    | Forward
    | Hide
    | CallInvite
    | CallRing
    | CallAccept
    | CallReject
    | CallCancel
    | CallHangup
    | CallResume
    | CallSdp
    | CallIce
)


# -- server -> client -----------------------------------------------------------------------------
class ServerFrame(msgspec.Struct, tag_field="type", omit_defaults=True):
    pass


class Limits(msgspec.Struct):
    """The server's limits a client should respect (and show) rather than hard-code."""

    max_text_chars: int
    max_frame_bytes: int
    recall_window_s: int
    #: Message actions (docs/protocol.md, "Message actions"); 0 edit window: no time limit.
    edit_window_s: int = 0
    max_reactions: int = 0
    forward_max_items: int = 0
    forward_max_targets: int = 0


class AuthOk(ServerFrame, tag="auth_ok"):
    user: User
    terminal: str
    heartbeat: int
    ts: int
    rid: Rid = None
    limits: Limits | None = None


class Pong(ServerFrame, tag="pong"):
    ts: int
    rid: Rid = None


class AckFrame(ServerFrame, tag="ack"):
    cmid: str
    id: str
    conv: str
    seq: int
    ts: int
    rid: Rid = None

    @classmethod
    def of(cls, message: Message, rid: Rid) -> AckFrame:
        """The ack of a stored message (for a resend: of the first one) to the send ``rid``."""
        return cls(
            cmid=message.cmid, id=message.id, conv=message.conv, seq=message.seq, ts=message.ts, rid=rid
        )


class SyncResult(ServerFrame, tag="sync_result"):
    conversations: list[Conversation]
    rid: Rid = None


class Messages(ServerFrame, tag="messages"):
    conv: str
    #: A message may be given already encoded (``msgspec.Raw``: a hot group's cache holds JSON), and is
    #: written into the frame as it is.
    messages: Sequence[Message | msgspec.Raw]
    has_more: bool
    rid: Rid = None


class ReceiptsResult(ServerFrame, tag="receipts_result"):
    conv: str
    seq: int
    read: int
    total: int
    readers: list[int]
    rid: Rid = None


class Ok(ServerFrame, tag="ok"):
    rid: Rid = None


class ErrorFrame(ServerFrame, tag="error"):
    code: str
    message: str
    rid: Rid = None
    retry_after: float | None = None
    #: With ``muted``: when the mute ends (ms since the epoch).
    until: int | None = None


class MsgPush(ServerFrame, tag="msg"):
    msg: Message
    #: The recipient set do-not-disturb on the group and is not mentioned: deliver, do not notify.
    silent: bool = False


class NewsPush(ServerFrame, tag="news"):
    """A hot group has messages up to ``seq``: pull what you miss (push-pull delivery)."""

    conv: str
    seq: int
    mention: bool = False


class ReadPush(ServerFrame, tag="read"):
    conv: str
    user: int
    seq: int


class TypingPush(ServerFrame, tag="typing"):
    conv: str
    user: int


class Forwarded(ServerFrame, tag="forwarded"):
    """The reply to ``forward``: one ack per (target, item), targets outer."""

    acks: list[Ack]
    rid: Rid = None


class HiddenPush(ServerFrame, tag="hidden"):
    """To every terminal of a user who hid these messages ("delete for me")."""

    conv: str
    seqs: list[int]


class PresencePush(ServerFrame, tag="presence"):
    user: int
    online: bool
    terminals: list[str]


class FriendPush(ServerFrame, tag="friend"):
    event: str
    request: Any = None
    user: User | None = None


class CallInfo(msgspec.Struct, omit_defaults=True):
    """A call as its two parties see it."""

    id: str
    caller: int
    callee: int
    media: str
    state: str
    created_at: int
    accepted_at: int = 0


class CallInvited(ServerFrame, tag="call_invited"):
    """The reply to ``call_invite``: the call exists and the callee's devices are being rung."""

    call: CallInfo
    rid: Rid = None


class CallIncoming(ServerFrame, tag="call_incoming"):
    """To every device of the callee: ring, then ``call_accept`` or ``call_reject``."""

    call: CallInfo


class CallRinging(ServerFrame, tag="call_ringing"):
    call: str


class CallAccepted(ServerFrame, tag="call_accepted"):
    """To the caller's device: the callee answered; send the SDP offer now."""

    call: str
    media: str


class CallEnded(ServerFrame, tag="call_ended"):
    call: str
    #: hangup, declined, cancelled, timeout, answered_elsewhere, lost (a party's connection went away)
    reason: str
    #: Talking time (from the accept), for a call that was answered.
    duration_ms: int = 0
    #: Who ended it, when a person did.
    by: int = 0


class CallSdpPush(ServerFrame, tag="call_sdp"):
    call: str
    kind: str
    sdp: str


class CallIcePush(ServerFrame, tag="call_ice"):
    call: str
    candidate: dict[str, Any] | None = None


_encoder = msgspec.json.Encoder()
encode = _encoder.encode
