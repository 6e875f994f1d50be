"""What a push says (docs/protocol.md, "Web Push payloads"), by the user's preview setting.

Every notification of a conversation has the tag ``conv:<conv>``, so a newer one replaces the older on the
device (with the count), and a ``clear`` closes it.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from hubbub.engines.storage.base_push import PushJob
from hubbub.services.webpush.keys import b64url

_encode = msgspec.json.encode


def tag_of(conv: str) -> str:
    return f"conv:{conv}"


def topic_of(conv: str) -> str:
    """RFC 8030 ``Topic`` (at most 32 base64url characters): a push service that still holds an undelivered
    push of this conversation replaces it with the newer one."""
    return b64url(hashlib.sha256(conv.encode()).digest())[:32]


def payload(job: PushJob, preview: str) -> bytes:
    if job.kind == "clear":
        return _encode({"type": "clear", "conv": job.conv, "tag": tag_of(job.conv)})
    if preview == "none":
        return _encode({"type": "wake"})
    data: dict[str, Any] = {
        "type": "msg",
        "conv": job.conv,
        "seq": job.seq,
        "count": job.count,
        "tag": tag_of(job.conv),
        "title": job.title,
        "mention": job.mention,
    }
    if preview == "full":
        data["body"] = job.text
    return _encode(data)


def urgency_of(job: PushJob) -> str:
    """RFC 8030 ``Urgency``: a private message or a mention may wake a phone; the rest waits for a good
    moment; a clear is never urgent."""
    if job.kind == "clear":
        return "low"
    return "high" if job.mention or job.conv.startswith("p:") else "normal"
