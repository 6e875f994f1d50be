"""Records passed between services, engines and the wire.

msgspec Structs: typed, cheap to build, and encoded to JSON as they are, so the shape documented in
docs/protocol.md ("Objects") is this file.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Terminal = Literal["web", "mobile", "desktop"]
TERMINALS: tuple[Terminal, ...] = ("web", "mobile", "desktop")


class User(msgspec.Struct, kw_only=True):
    id: int
    username: str
    nickname: str
    signature: str = ""
    avatar: str | None = None
    #: The server's own account (the sender of notices): clients show a badge, and its display name is
    #: reserved (services/names.py), so a user cannot pass for it.
    system: bool = False
    #: A closed account ("Deleted user"): its profile is anonymised, its messages keep it as their sender.
    deleted: bool = False


class Account(msgspec.Struct, kw_only=True):
    """A user with what only the server may see."""

    user: User
    password_hash: str
    banned: bool = False
    #: May use the admin routes and commands (docs/operations.md).
    is_admin: bool = False


class Message(msgspec.Struct, kw_only=True):
    id: str
    conv: str
    seq: int
    sender: int
    type: str
    body: dict[str, Any]
    ts: int
    cmid: str
    recalled: bool = False


class Ack(msgspec.Struct, kw_only=True):
    cmid: str
    id: str
    conv: str
    seq: int
    ts: int

    @classmethod
    def of(cls, message: Message) -> Ack:
        """The ack of a stored message (for a resend: of the first one)."""
        return cls(cmid=message.cmid, id=message.id, conv=message.conv, seq=message.seq, ts=message.ts)


class FriendRequest(msgspec.Struct, kw_only=True):
    id: int
    from_user: User = msgspec.field(name="from")
    to_user: User = msgspec.field(name="to")
    note: str
    status: Literal["pending", "accepted", "declined"]
    ts: int


class Friend(msgspec.Struct, kw_only=True):
    user: User
    since: int
    online: bool = False


class Conversation(msgspec.Struct, kw_only=True):
    """One row of a user's conversation list."""

    conv: str
    peer: int | None
    max_seq: int
    read_seq: int
    peer_read_seq: int
    unread: int
    last: Message | None
    #: Someone @mentioned me (or @all) after my read seq.
    mention: bool = False
    #: For groups: the group's id (its profile is GET /api/v1/groups/{id}).
    group: int | None = None
    #: I set do-not-disturb on this group: show it, count it, but do not notify unless I am mentioned.
    dnd: bool = False
    #: Retention removed every message at or below this seq: history and pull start above it, and a client
    #: holding older messages may drop them (docs/protocol.md, "Retention and the purged floor").
    floor: int = 0


Role = Literal["owner", "admin", "member"]
InvitePolicy = Literal["members", "admins"]


class Group(msgspec.Struct, kw_only=True):
    id: int
    name: str
    avatar: str | None
    notice: str
    owner: int
    invite_policy: InvitePolicy
    muted_all: bool
    dismissed: bool
    member_count: int
    created_at: int
    conv: str = ""
    #: The caller's own membership (role, mute, group nickname, do-not-disturb), where the reply is for one user.
    me: GroupMember | None = None
    #: The owner's (or an admin's) flag: deliver push-pull whatever the size. Kept as it was set; what the
    #: server actually does is ``push_pull``.
    hot: bool = False
    #: The effective delivery mode: true when the group is flagged ``hot`` or its member count reaches the
    #: server's ``hot_group_threshold`` (services/hot/policy.py).
    push_pull: bool = False
    #: Frozen by a server admin: read-only, sends are refused with ``group_frozen``.
    frozen: bool = False
    #: Listed in the public directory, joinable without an invite (docs/protocol.md, "Join links").
    public: bool = False
    #: Joins by link or from the directory become requests for the owner and admins to answer.
    join_approval: bool = False
    #: Who may pin messages: "admins" (owner and admins) or "members" (docs/protocol.md, "Message actions").
    pin_policy: str = "admins"


class GroupMember(msgspec.Struct, kw_only=True):
    user: User
    role: Role
    nickname: str
    #: Do not disturb: messages still arrive, are synced and count as unread, but their pushes are marked
    #: ``silent`` unless they mention this member (docs/protocol.md, "Do not disturb").
    dnd: bool
    #: Milliseconds since the epoch until which the member may not send; 0 when not muted.
    muted_until: int
    joined_at: int


class Tokens(msgspec.Struct, kw_only=True):
    user: User
    access_token: str
    refresh_token: str
    expires_in: int
