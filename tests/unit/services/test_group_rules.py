"""The group rule tables: every role against every action (and target where there is one), and every group
state against every action (docs/protocol.md, "Group rules")."""

import pytest

from hubbub.core.errors import Code
from hubbub.core.models import Group
from hubbub.services.group_rules import STATE_ALLOWS, Action, allowed, refusal, state_of

O, A, M = "owner", "admin", "member"  # noqa: E741  (the table reads better with initials)

# action -> roles allowed to take it (with no target / the default invite policy)
EXPECTED = {
    Action.READ: {O, A, M},
    Action.SEND: {O, A, M},
    Action.RECALL: {O, A, M},
    Action.RECALL_OTHERS: {O, A},
    Action.INVITE: {O, A, M},
    Action.KICK: {O, A},
    Action.MUTE: {O, A},
    Action.MUTE_ALL: {O, A},
    Action.EDIT_PROFILE: {O, A},
    Action.SET_POLICY: {O, A},
    Action.SET_ADMIN: {O},
    Action.TRANSFER: {O},
    Action.DISMISS: {O},
    Action.QUIT: {A, M},  # the owner transfers ownership first
    Action.MENTION_ALL: {O, A},  # a member's @all is refused
    Action.SET_NICKNAME: {O, A, M},
    Action.SET_DND: {O, A, M},
    Action.JOIN: {O, A, M},  # the joiner has no role yet; only the group's state decides
    Action.MANAGE_LINKS: {O, A},
    Action.ANSWER_REQUESTS: {O, A},
}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("role", [O, A, M])
def test_role_by_action(action, role):
    assert allowed(action, role) is (role in EXPECTED[action])


def test_every_action_is_in_the_table():
    assert set(EXPECTED) == set(Action)


@pytest.mark.parametrize(
    ("actor", "target", "ok"),
    [(O, A, True), (O, M, True), (A, M, True), (A, A, False), (A, O, False), (M, M, False), (O, O, False)],
)
@pytest.mark.parametrize("action", [Action.KICK, Action.MUTE, Action.RECALL_OTHERS])
def test_acting_on_someone_needs_a_higher_rank(action, actor, target, ok):
    assert allowed(action, actor, target) is ok


def test_invite_policy_admins_only():
    assert allowed(Action.INVITE, M, invite_policy="members")
    assert not allowed(Action.INVITE, M, invite_policy="admins")
    assert allowed(Action.INVITE, A, invite_policy="admins")


def group(*, frozen: bool = False, dismissed: bool = False) -> Group:
    return Group(
        id=1,
        name="g",
        avatar=None,
        notice="",
        owner=1,
        invite_policy="members",
        muted_all=False,
        dismissed=dismissed,
        member_count=2,
        created_at=0,
        frozen=frozen,
    )


# state -> actions it allows: frozen is read-only but members may leave; dismissed keeps only reading.
EXPECTED_STATES = {
    "active": set(Action),
    "frozen": {Action.READ, Action.SET_DND, Action.QUIT},
    "dismissed": {Action.READ, Action.SET_DND},
}
GROUPS = {"active": group(), "frozen": group(frozen=True), "dismissed": group(dismissed=True)}
CODES = {"frozen": Code.GROUP_FROZEN, "dismissed": Code.GROUP_DISMISSED}


@pytest.mark.parametrize("action", list(Action))
@pytest.mark.parametrize("state", list(EXPECTED_STATES))
def test_state_by_action(state, action):
    error = refusal(action, GROUPS[state])
    if action in EXPECTED_STATES[state]:
        assert error is None
    else:
        assert error is not None and error.code is CODES[state]


def test_every_state_is_in_the_table():
    assert set(STATE_ALLOWS) == set(EXPECTED_STATES)


def test_dismissed_wins_over_frozen():
    both = group(frozen=True, dismissed=True)
    assert state_of(both) == "dismissed"
    error = refusal(Action.QUIT, both)
    assert error is not None and error.code is Code.GROUP_DISMISSED
