"""The account rules without sockets: usernames, nicknames, the reserved server name, new passwords."""

from __future__ import annotations

import pytest

from hubbub.core.errors import Code, HubbubError
from hubbub.services.names import check_new_user, check_username, clean_nickname, reserved, skeleton
from hubbub.services.passwords import check_new_password, common_passwords


@pytest.mark.parametrize("name", ["abc", "a.b-c_d", "x" * 32, "ALICE"])
def test_good_usernames(name: str) -> None:
    check_username(name)


@pytest.mark.parametrize(
    "name", ["ab", "x" * 33, "name\n", "name ", " name", "na me", "~hubbub", "nämé", "hubbub", "Hub.bub"]
)
def test_bad_usernames(name: str) -> None:
    with pytest.raises(HubbubError) as err:
        check_username(name)
    assert err.value.code is Code.INVALID_FIELD


def test_nicknames_are_cleaned_of_format_characters() -> None:
    assert clean_nickname("  \u202eAlice\u202c  ") == "Alice"
    assert clean_nickname("A\u200bl\u2060i\ufeffce") == "Alice"
    assert clean_nickname("李雷 🙂") == "李雷 🙂"
    assert check_new_user("bob_1", None) == "bob_1"
    for bad in ["", "   ", "\u200b\u200c\u200d", "\u202e\u202c", "a\nb", "x" * 65, "ＨＵＢＢＵＢ"]:
        with pytest.raises(HubbubError):
            clean_nickname(bad)


def test_the_server_name_is_compared_by_what_it_looks_like() -> None:
    assert skeleton("Ｈｕｂ ｂｕｂ!") == "hubbub"
    for lookalike in ["Hubbub", "HUBBUB", "hub-bub", "Нubbub", "һubbub", "Hubbu\u044c", "hu\u0432\u0432ub"]:
        assert reserved(lookalike), lookalike
    for other in ["Hubbub fan", "hubby", "bubhub"]:
        assert not reserved(other), other


def test_new_passwords() -> None:
    check_new_password("correct-horse-battery")
    assert len(common_passwords()) > 10_000
    for weak in ["password", "PASSWORD", "12345678", " " * 8, "zzzzzzzzzz", "iloveyou", "qwertyuiop"]:
        with pytest.raises(HubbubError) as err:
            check_new_password(weak)
        assert err.value.code is Code.WEAK_PASSWORD, weak
    for bad_length in ["short", "x" * 257]:
        with pytest.raises(HubbubError) as err:
            check_new_password(bad_length)
        assert err.value.code is Code.INVALID_FIELD
