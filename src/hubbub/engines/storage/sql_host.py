"""What the SQL mixins (sql_groups, sql_media, sql_admin, sql_access) use of ``SqlStorage``, declared once.

The mixins are halves of one class split by domain; ``SqlStorage`` provides these. The declarations exist only
for the type checker: at run time the class is empty, so a mixin can never call a stand-in by mistake.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

if TYPE_CHECKING:
    from hubbub.core.models import Group, Message
    from hubbub.engines.storage.base import GroupFacts, NewMessage
    from hubbub.engines.storage.sqlite_writer import SqliteBatchWriter


class SqlHost:
    engine: AsyncEngine
    dialect: str
    is_hot: Callable[[Group], bool]
    _batch_writer: SqliteBatchWriter | None

    if TYPE_CHECKING:

        def _tx(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _insert_ignore(self, table: Any) -> Any: ...

        def _first_user_clause(self) -> Any: ...

        async def _insert_user(
            self, conn: AsyncConnection, username: str, nickname: str, password_hash: str, now: int
        ) -> int: ...

        @staticmethod
        async def _revoke_sessions(conn: AsyncConnection, user_id: int, keep_sid: str | None) -> list[str]: ...

        async def _lock_conversations(self, conn: AsyncConnection, convs: list[str]) -> None: ...

        async def _append(
            self, conn: AsyncConnection, fresh: list[NewMessage]
        ) -> dict[tuple[int, str], Message]: ...

        async def _group_facts(
            self, conn: AsyncConnection, senders: dict[str, set[int]]
        ) -> dict[str, GroupFacts]: ...

        async def _forget_actions(self, conn: AsyncConnection, conv: str, seq: int) -> None: ...

        async def _hold_index(self, conn: AsyncConnection) -> None: ...

        async def _reindex(self, conn: AsyncConnection, conv: str, seqs: list[int]) -> None: ...
