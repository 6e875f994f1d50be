"""The before-send hook for embedders (docs/integrations.md, "Before-send hook").

With ``before_send_url`` set, every user message (bots and incoming webhooks included; the server's own
notices excepted) is POSTed there before it is stored, and the answer decides: ``{"action": "allow"}``,
``{"action": "reject", "reason": "..."}`` (the sender gets ``content_rejected`` with the reason) or
``{"action": "rewrite", "body": {...}}`` (stored instead, after the same content checks). A hook that fails,
answers nonsense or takes longer than ``before_send_timeout_s`` lets the message through when
``before_send_fail_open`` is set, and refuses it with ``unavailable`` otherwise.

The call is awaited by the sender's own request, before the message reaches the send batcher
(services/batcher.py): a slow hook delays its sender, never the others.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import aiohttp
import msgspec

from hubbub.config import Config
from hubbub.core.errors import Code, HubbubError
from hubbub.engines.storage.base import NewMessage
from hubbub.services.egress import Egress, RefusedDestination

log = logging.getLogger(__name__)


class Verdict(msgspec.Struct, kw_only=True):
    action: Literal["allow", "reject", "rewrite"]
    reason: str = ""
    body: dict[str, Any] | None = None


class BeforeSend:
    def __init__(self, config: Config, egress: Egress) -> None:
        self.config = config
        self.egress = egress
        self.url = config.before_send_url
        #: Calls that failed and were let through or refused by the fail-open setting (metrics, tests).
        self.failures = 0

    async def __call__(self, item: NewMessage) -> NewMessage:
        request = msgspec.json.encode(
            {
                "sender": item.sender,
                "conv": item.conv,
                "cmid": item.cmid,
                "type": item.type,
                "body": item.body,
            }
        )
        try:
            status, raw = await self.egress.post_json(
                self.url, request, {"Hubbub-Event": "before_send"}, self.config.before_send_timeout_s
            )
            if status != 200:
                raise ValueError(f"status {status}")
            verdict = msgspec.json.decode(raw, type=Verdict)
        except (
            TimeoutError,
            aiohttp.ClientError,
            OSError,
            RefusedDestination,
            ValueError,
            msgspec.DecodeError,
        ) as exc:
            return self._failed(item, exc)
        if verdict.action == "reject":
            raise HubbubError(Code.CONTENT_REJECTED, verdict.reason[:256] or "refused by the server's policy")
        if verdict.action == "rewrite":
            if verdict.body is None:
                return self._failed(item, ValueError("rewrite without a body"))
            return msgspec.structs.replace(item, body=verdict.body)
        return item

    def _failed(self, item: NewMessage, exc: BaseException) -> NewMessage:
        self.failures += 1
        log.warning("before-send hook failed: %s", exc or type(exc).__name__)
        if self.config.before_send_fail_open:
            return item
        raise HubbubError(Code.UNAVAILABLE, "the message check is unavailable, try again")
