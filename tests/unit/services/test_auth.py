"""Accounts and sessions without HTTP: register, log in, refresh with its replay grace, log out, on a fake clock.

docs/security.md ("Refresh tokens") is the rule: refresh tokens rotate on every use; a spent one presented
again within ``refresh_reuse_grace_s`` while its successor is unused is a lost response and gets the same
successor; anything else revokes the session and closes its sockets.
"""

from __future__ import annotations

from hubbub.core.errors import Code
from hubbub.protocol.close_codes import Close
from tests.unit.services.conftest import FakeClock, World, refused

PASSWORD = "correct horse battery staple"


async def test_register_then_log_in(world: World) -> None:
    tokens = await world.auth.register("alice", PASSWORD, None)
    assert (tokens.user.username, tokens.user.nickname) == ("alice", "alice")
    principal = await world.auth.authenticate(tokens.access_token)
    assert principal.user_id == tokens.user.id
    again = await world.auth.login("ALICE", PASSWORD, "192.0.2.1")  # case-insensitive
    assert again.user.id == tokens.user.id and again.refresh_token != tokens.refresh_token
    await refused(Code.UNAUTHORIZED, world.auth.login("alice", "wrong password!!", "192.0.2.1"))
    await refused(Code.UNAUTHORIZED, world.auth.login("nobody", PASSWORD, "192.0.2.1"))


async def test_register_refuses_taken_reserved_and_weak(world: World) -> None:
    await world.auth.register("alice", PASSWORD, "Ally")
    await refused(Code.USERNAME_TAKEN, world.auth.register("Alice", PASSWORD, None))
    await refused(Code.INVALID_FIELD, world.auth.register("hubbub", PASSWORD, None))
    await refused(Code.WEAK_PASSWORD, world.auth.register("bob", "password", None))
    await refused(Code.INVALID_FIELD, world.auth.register("bob", PASSWORD, "Hub\u200bbub"))


async def test_login_limit_refills_with_the_clock(world: World, clock: FakeClock) -> None:
    await world.auth.register("alice", PASSWORD, None)
    burst = world.config.login_burst
    for _ in range(burst):
        await refused(Code.UNAUTHORIZED, world.auth.login("alice", "wrong password!!", "192.0.2.1"))
    await refused(Code.RATE_LIMITED, world.auth.login("alice", PASSWORD, "192.0.2.1"))
    await world.auth.login("alice", PASSWORD, "198.51.100.7")  # another address has its own allowance
    clock.advance(60 / world.config.login_per_minute)
    await world.auth.login("alice", PASSWORD, "192.0.2.1")


async def test_an_old_access_token_is_expired(world: World, clock: FakeClock) -> None:
    clock.advance(-(world.config.access_token_ttl_s + 60))
    tokens = await world.auth.register("alice", PASSWORD, None)
    await refused(Code.TOKEN_EXPIRED, world.auth.authenticate(tokens.access_token))
    await refused(Code.UNAUTHORIZED, world.auth.authenticate(tokens.access_token[:-2] + "xx"))


async def test_refresh_rotates(world: World) -> None:
    first = await world.auth.register("alice", PASSWORD, None)
    second = await world.auth.refresh(first.refresh_token)
    third = await world.auth.refresh(second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    await world.auth.authenticate(third.access_token)
    await refused(Code.UNAUTHORIZED, world.auth.refresh("r1.unknown"))


async def test_a_retried_refresh_within_the_grace_gets_the_same_successor(
    world: World, clock: FakeClock
) -> None:
    first = await world.auth.register("alice", PASSWORD, None)
    second = await world.auth.refresh(first.refresh_token)
    clock.advance(world.config.refresh_reuse_grace_s - 1)
    retried = await world.auth.refresh(first.refresh_token)  # the answer to the first call was lost
    assert retried.refresh_token == second.refresh_token
    assert world.pushes.closes == []
    assert (await world.auth.refresh(retried.refresh_token)).user.id == first.user.id  # the session lives on


async def test_a_replay_after_the_grace_revokes_the_session(world: World, clock: FakeClock) -> None:
    first = await world.auth.register("alice", PASSWORD, None)
    second = await world.auth.refresh(first.refresh_token)
    clock.advance(world.config.refresh_reuse_grace_s + 1)
    await refused(Code.TOKEN_REVOKED, world.auth.refresh(first.refresh_token))
    await refused(Code.TOKEN_REVOKED, world.auth.authenticate(second.access_token))
    await refused(Code.TOKEN_REVOKED, world.auth.refresh(second.refresh_token))
    sid = world.auth.decode_access(second.access_token).sid
    assert world.pushes.closes == [(first.user.id, Close.REVOKED, sid)]


async def test_a_replay_once_the_successor_was_used_revokes_at_once(world: World) -> None:
    first = await world.auth.register("alice", PASSWORD, None)
    second = await world.auth.refresh(first.refresh_token)
    await world.auth.refresh(second.refresh_token)  # the successor is spent: the old token is stolen
    await refused(Code.TOKEN_REVOKED, world.auth.refresh(first.refresh_token))


async def test_a_refresh_token_expires(world: World, clock: FakeClock) -> None:
    first = await world.auth.register("alice", PASSWORD, None)
    clock.advance(world.config.refresh_token_ttl_s + 1)
    await refused(Code.TOKEN_EXPIRED, world.auth.refresh(first.refresh_token))


async def test_logout_ends_one_session_only(world: World) -> None:
    phone = await world.auth.register("alice", PASSWORD, None)
    laptop = await world.auth.login("alice", PASSWORD, "192.0.2.1")
    await world.auth.logout(phone.refresh_token)
    await refused(Code.TOKEN_REVOKED, world.auth.authenticate(phone.access_token))
    await refused(Code.TOKEN_REVOKED, world.auth.refresh(phone.refresh_token))
    await world.auth.authenticate(laptop.access_token)
    assert world.pushes.closes == [
        (phone.user.id, Close.REVOKED, world.auth.decode_access(phone.access_token).sid)
    ]
    await refused(Code.UNAUTHORIZED, world.auth.logout("r1.unknown"))


async def test_a_banned_user_cannot_log_in_or_refresh(world: World) -> None:
    tokens = await world.auth.register("alice", PASSWORD, None)
    await world.storage.set_user_flags(tokens.user.id, banned=True)
    await refused(Code.FORBIDDEN, world.auth.login("alice", PASSWORD, "192.0.2.1"))
    await refused(Code.TOKEN_REVOKED, world.auth.refresh(tokens.refresh_token))
