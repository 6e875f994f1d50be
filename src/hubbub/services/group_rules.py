"""Who may do what in a group: one table, no I/O, unit-tested as a role x action matrix.

Roles rank owner > admin > member. Acting *on* someone (kick, mute) needs a strictly higher rank than
theirs, so admins manage members, the owner manages everyone, and nobody manages themselves or a peer.
"""

from __future__ import annotations

from enum import StrEnum

RANK = {"member": 0, "admin": 1, "owner": 2}


class Action(StrEnum):
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
    RECALL_OTHERS = "recall_others"


#: The lowest role allowed to take each action.
MIN_ROLE = {
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
    Action.RECALL_OTHERS: "admin",
}

#: Actions that have a target member whose rank must be below the actor's.
TARGETED = frozenset({Action.KICK, Action.MUTE, Action.RECALL_OTHERS})


def allowed(action: Action, actor: str, target: str | None = None, invite_policy: str = "members") -> bool:
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
