"""Profiles: read, edit, find people by name."""

from __future__ import annotations

from typing import Any

from hubbub.core.errors import invalid, not_found
from hubbub.core.models import User
from hubbub.engines.storage.base import Storage
from hubbub.services.media import MediaService
from hubbub.services.names import clean_nickname

_LIMITS = {"nickname": (1, 64), "signature": (0, 256), "avatar": (0, 128)}


class AccountService:
    def __init__(self, storage: Storage, media: MediaService) -> None:
        self.storage = storage
        self.media = media

    async def user(self, user_id: int) -> User:
        found = (await self.storage.users([user_id])).get(user_id)
        if found is None:
            raise not_found("user")
        return found

    async def update_profile(self, user_id: int, changes: dict[str, Any]) -> User:
        fields: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in _LIMITS:
                raise invalid(name, "not an editable profile field")
            if name == "avatar":  # an image upload the user may read (MediaService.check_avatar)
                fields[name] = await self.media.check_avatar(user_id, value)
                continue
            if not isinstance(value, str):
                raise invalid(name, "must be a string")
            if name == "nickname":
                fields[name] = clean_nickname(value)  # the registration rule (services/names.py)
                continue
            value = value.strip()
            low, high = _LIMITS[name]
            if not low <= len(value) <= high:
                raise invalid(name, f"must be {low} to {high} characters")
            fields[name] = value
        user = await self.storage.update_profile(user_id, fields)
        if user is None:
            raise not_found("user")
        return user

    async def search(self, query: str, limit: int) -> list[User]:
        query = query.strip()
        if not 1 <= len(query) <= 32:
            raise invalid("q", "1 to 32 characters")
        return await self.storage.search_users(query, max(1, min(limit, 50)))
