"""Reply snapshots: what a reply carries of the message it answers, so clients render it without a fetch.

The snapshot is taken when the reply is sent (docs/protocol.md, "Message actions"): the referenced message must
be one of the same conversation inside the sender's window, not a notice and not recalled.
"""

from __future__ import annotations

from typing import Any

from hubbub.core.errors import Code, HubbubError, invalid
from hubbub.engines.storage.base import Storage
from hubbub.engines.storage.sql_actions import ACTIONABLE_TYPES

#: Code points of the referenced text (or caption) a snapshot keeps.
SNAPSHOT_CHARS = 100


async def snapshot(storage: Storage, conv: str, min_seq: int, ref: Any) -> dict[str, Any]:
    """The stored ``body.reply`` for a client's ``{"seq": n}``; raises ``reply_invalid`` for a reference
    the sender cannot see."""
    if not isinstance(ref, dict) or ref.keys() != {"seq"}:
        raise invalid("body.reply", 'an object {"seq": n}')
    seq = ref["seq"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq <= 2**53:
        raise invalid("body.reply.seq", "a seq (a positive integer)")
    target = await storage.message(conv, seq) if seq > min_seq else None
    if target is None or target.recalled or target.type not in ACTIONABLE_TYPES:
        raise HubbubError(Code.REPLY_INVALID, f"no message {seq} you can see in this conversation")
    body = target.body
    snap: dict[str, Any] = {"seq": seq, "sender": target.sender, "type": target.type}
    text = body.get("text") if target.type in ("text", "notice") else body.get("caption") or body.get("name")
    if isinstance(text, str) and text:
        snap["text"] = text[:SNAPSHOT_CHARS]
    if isinstance(body.get("upload"), str):
        snap["upload"] = body["upload"]
    return snap
