"""The canary's check counts what the checker finds in ``hubbub_canary_violations_total{kind}``: fed a lost
message and a member missing a push, it reports them (no server needed: the truth and copies are given)."""

from __future__ import annotations

import time
from typing import Any

from hubbub.client.sdk import ConversationLog
from hubbub.proof.canary import Canary, CanaryOptions, Path
from hubbub.proof.checker import Acked

CONV = "p:1:2"


def msg(seq: int, sender: int) -> dict[str, Any]:
    return {"id": f"m{seq}", "conv": CONV, "seq": seq, "sender": sender, "cmid": f"c{seq}", "type": "text"}


async def test_a_lost_message_and_a_missing_copy_are_counted() -> None:
    canary = Canary(
        CanaryOptions(urls=["http://127.0.0.1:9"], admin_user="a", admin_password="p", password="p")
    )
    try:
        long_ago = time.monotonic() - 60
        for i, client in enumerate(canary.clients):
            client.user = {"id": i + 1, "username": f"canary_{i}"}
            client.connected_since = long_ago
        path = Path("private", CONV, [0, 1])
        path.acks = [Acked(CONV, s, f"m{s}", 1, f"c{s}", long_ago, long_ago) for s in (1, 2, 3)]
        canary.paths = {"private": path}
        stored = [msg(1, 1), msg(3, 1)]  # seq 2 was acknowledged and is gone

        async def truth(_path: Path, _after: int) -> list[dict[str, Any]]:
            return stored

        canary._truth = truth  # type: ignore[method-assign]
        for m in stored:
            canary.clients[0].convs.setdefault(CONV, ConversationLog()).add(m)
        canary.clients[1].convs.setdefault(CONV, ConversationLog()).add(
            stored[0]
        )  # its push of seq 3 never came and no sync filled it

        await canary.verify()
        v = canary.metrics.violations
        assert v.labels("lost")._value.get() == 1
        assert v.labels("gapped")._value.get() == 1
        assert v.labels("copy_missing")._value.get() == 1
        assert canary.metrics.total_violations() == 3
        assert canary.metrics.checked.labels("private")._value.get() == 3
        assert path.checked == 3 and path.acks == []
    finally:
        await canary.close()
