"""Closing an account, by its user (with their password) or by an admin (docs/operations.md, "Account
deletion").

What happens, in this order:
1. groups: the user leaves every group; a group they own passes to its first admin (else its first member)
   first, and a group with no one else in it is dismissed. These are ordinary group changes: members see
   the usual system messages, and every node drops its roster of the group;
2. the account row is anonymised in one transaction (``Storage.close_account``): username ``~deleted-<id>``
   (a name nobody can register), nickname "Deleted user", no signature, avatar or usable password, banned,
   no admin rights; every session revoked; friendships and pending friend requests deleted. Every live
   connection of the user is then closed (4403) on every node;
3. uploads only they could read — never put into any message — are deleted (their bytes go with the next
   collector run, after ``blob_gc_grace_s``).

Their messages are **kept**, in private chats and groups alike, shown under "Deleted user" (``User.deleted``):
the other side's history stays whole and seqs stay gap-free. Removing them is retention's job: set a policy
on the conversation (or the server default) and the purge job removes them with everything else that old.
Uploads they sent in messages stay readable by those who could read them, for the same reason.
"""

from __future__ import annotations

import contextlib

from hubbub.core.clock import now_ms
from hubbub.core.errors import Code, HubbubError, not_found
from hubbub.engines.routing.base import Routing
from hubbub.engines.storage.base import Storage
from hubbub.protocol.close_codes import Close
from hubbub.services.auth import Principal
from hubbub.services.friends import FriendService
from hubbub.services.groups import GroupService
from hubbub.services.passwords import Passwords


class AccountClosing:
    def __init__(
        self,
        storage: Storage,
        routing: Routing,
        groups: GroupService,
        friends: FriendService,
        passwords: Passwords,
    ) -> None:
        self.storage = storage
        self.routing = routing
        self.groups = groups
        self.friends = friends
        self.passwords = passwords

    async def close_own(self, principal: Principal, password: str) -> None:
        """The user closes their own account: their password again, as for a password change."""
        account = await self.storage.account(principal.user_id)
        if account is None or not await self.passwords.verify(account.password_hash, password):
            raise HubbubError(Code.UNAUTHORIZED, "wrong password")
        await self.close(principal.user_id)

    async def close(self, user_id: int) -> None:
        """Close the account (see the module docstring); ``not_found`` if there is no open account."""
        record = await self.storage.user_record(user_id)
        if record is None or record.user.deleted or record.user.system:
            raise not_found("user")
        await self._leave_groups(user_id)
        friend_ids = await self.storage.friend_ids(user_id)
        sids = await self.storage.close_account(user_id, now_ms())
        if sids is None:
            raise not_found("user")
        await self.friends.friendships_ended(user_id, friend_ids)  # no node lets a message through on them
        await self.routing.disconnect(user_id, Close.REVOKED, "account deleted")
        await self.storage.delete_private_uploads(user_id)

    async def _leave_groups(self, user_id: int) -> None:
        for group in await self.storage.groups_of(user_id):
            if group.dismissed:
                continue
            # A frozen group refuses every change: the user stays in its (read-only) member list.
            with contextlib.suppress(HubbubError):
                if group.owner == user_id:
                    heir = await self._heir(group.id, user_id)
                    if heir is None:
                        await self.groups.dismiss(user_id, group.id)
                        continue
                    await self.groups.transfer(user_id, group.id, heir)
                await self.groups.quit(user_id, group.id)

    async def _heir(self, group_id: int, owner: int) -> int | None:
        """The first admin, else the first member, other than the owner."""
        first: int | None = None
        after = 0
        while page := await self.storage.group_members(group_id, after, 200):
            for m in page:
                if m.user.id == owner:
                    continue
                if m.role == "admin":
                    return m.user.id
                first = first or m.user.id
            after = page[-1].user.id
            if len(page) < 200:
                break
        return first
