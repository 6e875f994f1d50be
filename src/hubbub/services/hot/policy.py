"""The one definition of a hot group (push-pull delivery), and the member cap that follows from it.

A group is delivered push-pull when its owner or an admin set its ``hot`` flag, or when its member count
reaches ``hot_group_threshold``. Everything that needs to know asks ``HotPolicy``: the storing transaction
(which member rows a send reads, through the callable storage is given), the group service (how a change is
announced, what a reply's ``push_pull`` says) and this package (whom to signal, how to serve a pull).
Storage only reports the facts it is asked about (the flag and the member count).
"""

from __future__ import annotations

from hubbub.config import Config
from hubbub.core.models import Group


class HotPolicy:
    def __init__(self, threshold: int, member_limit: int, flagged_member_limit: int) -> None:
        self.threshold = threshold
        self.member_limit = member_limit
        self.flagged_member_limit = flagged_member_limit

    @classmethod
    def of(cls, config: Config) -> HotPolicy:
        return cls(config.hot_group_threshold, config.group_member_limit, config.hot_group_member_limit)

    def is_hot(self, flagged: bool, member_count: int) -> bool:
        """Push-pull: the owner's flag, or big enough that pushing every message to everyone costs too much."""
        return flagged or member_count >= self.threshold

    def group_is_hot(self, group: Group) -> bool:
        return self.is_hot(group.hot, group.member_count)

    def describe(self, group: Group) -> Group:
        """Fill in the effective mode (``push_pull``) of a group about to be shown to a client."""
        group.push_pull = self.group_is_hot(group)
        return group

    def max_members(self, group: Group | None) -> int:
        """Most members a group may have. Only the owner's flag lifts the cap: a group that is hot by size
        alone keeps the ordinary cap, since nobody chose push-pull for it."""
        return self.flagged_member_limit if group is not None and group.hot else self.member_limit
