"""The group permission table: every role against every action (and target where there is one)."""

import pytest

from hubbub.services.group_rules import Action, allowed

O, A, M = "owner", "admin", "member"  # noqa: E741  (the table reads better with initials)

# action -> roles allowed to take it (with no target / the default invite policy)
EXPECTED = {
    Action.INVITE: {O, A, M},
    Action.KICK: {O, A},
    Action.MUTE: {O, A},
    Action.MUTE_ALL: {O, A},
    Action.EDIT_PROFILE: {O, A},
    Action.SET_POLICY: {O, A},
    Action.SET_ADMIN: {O},
    Action.TRANSFER: {O},
    Action.DISMISS: {O},
    Action.QUIT: {A, M},
    Action.MENTION_ALL: {O, A},
    Action.RECALL_OTHERS: {O, A},
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
