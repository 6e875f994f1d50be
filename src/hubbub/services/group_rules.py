"""Who may do what in a group, and what a frozen or dismissed group still allows: two tables, no I/O,
unit-tested as role x action and state x action matrices (tests/unit/services/test_group_rules.py).

Roles rank owner > admin > member. Acting *on* someone (kick, mute, recall their message) needs a strictly
higher rank than theirs, so admins manage members, the owner manages everyone, and nobody manages themselves
or a peer. The owner cannot quit: they transfer ownership (or dismiss the group) first.

A group is ``active``, ``frozen`` (by a server admin: read-only, reversible) or ``dismissed`` (by its owner or a
server admin: final). The state table is checked before the role table, and inside the transaction that
writes (``admit_group_message`` for sends and recalls, the ``check`` of ``Storage.change_group`` for group
changes), so a freeze that lands while a request is in flight is never written past. docs/protocol.md,
"Group rules", is this module in prose.
"""

from __future__ import annotations

from enum import StrEnum

from hubbub.core.errors import Code, HubbubError
from hubbub.core.models import Group

RANK = {"member": 0, "admin": 1, "owner": 2}


class Action(StrEnum):
    #: Profile, members, presence, history, pull, read marks and read receipts.
    READ = "read"
    SEND = "send"
    #: Recall one's own message, within the recall window.
    RECALL = "recall"
    RECALL_OTHERS = "recall_others"
    INVITE = "invite"
    KICK = "kick"
    MUTE = "mute"
    MUTE_ALL = "mute_all"
    EDIT_PROFILE = "edit_profile"
    SET_POLICY = "set_policy"
    SET_ADMIN = "set_admin"
    TRANSFER = "transfer"
    DISMISS = "dismiss"
    QUIT = "quit"
    MENTION_ALL = "mention_all"
    #: The member's group nickname: other members see it, so it is group content.
    SET_NICKNAME = "set_nickname"
    #: Do-not-disturb: the member's own notification setting, seen by nobody else.
    SET_DND = "set_dnd"
    #: Join by a link or from the public directory (the joiner is not a member yet: only the group's state
    #: is checked; services/joins.py).
    JOIN = "join"
    #: Create, list and revoke the group's join links.
    MANAGE_LINKS = "manage_links"
    #: Approve or decline requests to join a group that needs approval.
    ANSWER_REQUESTS = "answer_requests"


#: The lowest role allowed to take each action.
MIN_ROLE = {
    Action.READ: "member",
    Action.SEND: "member",  # further limited by mutes (services/messages.py admit_group_message)
    Action.RECALL: "member",
    Action.RECALL_OTHERS: "admin",
    Action.INVITE: "member",  # narrowed to admins by the group's invite policy
    Action.KICK: "admin",
    Action.MUTE: "admin",
    Action.MUTE_ALL: "admin",
    Action.EDIT_PROFILE: "admin",
    Action.SET_POLICY: "admin",
    Action.SET_ADMIN: "owner",
    Action.TRANSFER: "owner",
    Action.DISMISS: "owner",
    Action.QUIT: "member",
    Action.MENTION_ALL: "admin",
    Action.SET_NICKNAME: "member",
    Action.SET_DND: "member",
    Action.JOIN: "member",
    Action.MANAGE_LINKS: "admin",
    Action.ANSWER_REQUESTS: "admin",
}

#: Actions that have a target member whose rank must be below the actor's.
TARGETED = frozenset({Action.KICK, Action.MUTE, Action.RECALL_OTHERS})

#: What each state of a group still allows. A frozen group is read-only for everyone in it, the owner too
#: (a server admin froze it, typically to stop abuse while they look): members keep reading, marking read
#: and setting their own do-not-disturb, and may leave, since nobody should be held in a group; nothing that
#: others would see changes. A dismissed group is final: its history stays readable to its last members and
#: nothing else is allowed, leaving included (there is nothing left to leave; clients hide it instead).
#: Server admins are not members acting through this table: they may unfreeze, and dismiss a frozen group
#: (services/admin.py).
STATE_ALLOWS: dict[str, frozenset[Action]] = {
    "active": frozenset(Action),
    "frozen": frozenset({Action.READ, Action.SET_DND, Action.QUIT}),
    "dismissed": frozenset({Action.READ, Action.SET_DND}),
}


def state_of(group: Group) -> str:
    """``dismissed`` wins over ``frozen``: a dismissed group is final whatever else it was."""
    if group.dismissed:
        return "dismissed"
    if group.frozen:
        return "frozen"
    return "active"


def refusal(action: Action, group: Group) -> HubbubError | None:
    """The error for ``action`` on ``group`` in its current state, or None if the state allows it."""
    state = state_of(group)
    if action in STATE_ALLOWS[state]:
        return None
    if state == "dismissed":
        return HubbubError(Code.GROUP_DISMISSED, "this group was dismissed: only its history stays readable")
    return HubbubError(Code.GROUP_FROZEN, "this group was frozen by an administrator: it is read-only")


def allowed(action: Action, actor: str, target: str | None = None, invite_policy: str = "members") -> bool:
    """Whether a member of role ``actor`` may take ``action`` (on a member of role ``target``)."""
    need = MIN_ROLE[action]
    if action is Action.INVITE and invite_policy == "admins":
        need = "admin"
    if RANK[actor] < RANK[need]:
        return False
    if action is Action.QUIT and actor == "owner":
        return False  # the owner transfers ownership or dismisses the group instead
    if action in TARGETED and target is not None and RANK[target] >= RANK[actor]:
        return False
    return True
