"""Reports: any user may report a message, a user or a group, with a reason (docs/protocol.md, "Reports").

A report keeps a **snapshot** of what was reported as the reporter saw it then (the message with its body and
sender, the user's profile, the group's name and notice), so a recall or an edit afterwards does not hide
it from the admins. A reporter can report only what they can see: a message in their own window of one of
their conversations, any user, a group they are in or a public group. Admins act from the queue
(services/admin.py ``resolve_report``); the reporter sees the outcome in ``GET /api/v1/reports`` and gets a
notice.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hubbub.core.clock import now_ms
from hubbub.core.convs import parse_group, parse_private, validate
from hubbub.core.errors import Code, HubbubError, invalid, not_found
from hubbub.engines.ratelimit.base import RateLimiter
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.base_access import Report
from hubbub.services.limits import enforce

KINDS = ("message", "user", "group")
MAX_REASON = 1024
#: Reports one user may file per hour: enough for a real problem, not enough to flood the queue.
REPORTS_PER_HOUR = 30


class ReportService:
    def __init__(self, storage: Storage, limiter: RateLimiter) -> None:
        self.storage = storage
        self.limiter = limiter

    async def report(self, me: int, kind: str, target: str, reason: str) -> Report:
        reason = reason.strip()
        if kind not in KINDS:
            raise invalid("kind", "'message', 'user' or 'group'")
        if not 1 <= len(reason) <= MAX_REASON:
            raise invalid("reason", f"1 to {MAX_REASON} characters")
        snapshot = await self._snapshot(me, kind, target)
        await enforce(self.limiter, f"report:{me}", REPORTS_PER_HOUR / 3600, REPORTS_PER_HOUR)
        return await self.storage.create_report(
            Report(
                id=0,
                reporter=me,
                kind=kind,
                target=target,
                reason=reason,
                snapshot=snapshot,
                status="open",
                created_at=now_ms(),
            )
        )

    async def mine(self, me: int, before: int = 0, limit: int = 50) -> list[Report]:
        return await self.storage.reports("", me, before, max(1, min(limit, 100)))

    async def _snapshot(self, me: int, kind: str, target: str) -> dict[str, Any]:
        if kind == "message":
            conv, _, raw_seq = target.rpartition(":")
            if not raw_seq.isascii() or not raw_seq.isdigit() or len(raw_seq) > 15:
                raise invalid("target", "'<conv>:<seq>' for a message")
            try:
                conv = validate(conv)
            except HubbubError as exc:
                raise invalid("target", "'<conv>:<seq>' for a message") from exc
            seq = int(raw_seq)
            pair = parse_private(conv)
            if pair is not None and me not in pair:
                raise not_found("message")
            state = await self.storage.member_state(conv, me)
            message = await self.storage.message(conv, seq)
            if state is None or message is None or seq <= state[1] or message.type in ("system", "recall"):
                raise not_found("message")
            if message.sender == me:
                raise invalid("target", "you cannot report your own message")
            sender = (await self.storage.users([message.sender])).get(message.sender)
            return {
                "message": msgspec.to_builtins(message),
                "sender": msgspec.to_builtins(sender) if sender else None,
                "group": parse_group(conv),
            }
        if not target.isascii() or not target.isdigit() or len(target) > 12:
            raise invalid("target", f"the {kind}'s id")
        target_id = int(target)
        if kind == "user":
            if target_id == me:
                raise invalid("target", "you cannot report yourself")
            user = (await self.storage.users([target_id])).get(target_id)
            if user is None or user.system:
                raise not_found("user")
            return {"user": msgspec.to_builtins(user)}
        group = await self.storage.group(target_id)
        member = await self.storage.group_member(target_id, me) if group else None
        if group is None or (member is None and not group.public):
            raise not_found("group")
        return {"group": msgspec.to_builtins(msgspec.structs.replace(group, me=None))}


def check_report_action(report: Report, action: str) -> None:
    """Which actions fit which report (services/admin.py ``resolve_report``)."""
    fits = {
        "message": ("recall", "ban", "freeze", "dismiss"),
        "user": ("ban", "dismiss"),
        "group": ("freeze", "dismiss_group", "dismiss"),
    }[report.kind]
    if action not in fits:
        raise HubbubError(Code.INVALID_FIELD, f"action: one of {', '.join(fits)} for a {report.kind} report")
