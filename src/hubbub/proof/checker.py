"""The exactly-once checker: given what the server stored, what clients were told and what they hold, name
every lost, duplicated, reordered or gapped message and every refused send that was stored anyway.

Shared by the CI chaos run (tests/chaos/), the soak script (scripts/soak.py) and the canary
(hubbub/proof/canary.py). Pure: it reads plain dicts (messages as the API returns them) and records, so unit
tests can feed it a broken history and see each fault caught (tests/unit/test_checker.py).

The rules, each a ``kind`` (the canary's ``hubbub_canary_violations_total{kind=...}`` label):

- ``gapped``: a conversation's stored seqs are not ``first..last`` without a hole;
- ``duplicated``: one (sender, cmid) stored at two seqs (a retried send stored twice);
- ``lost``: an acknowledged send is not stored at its acknowledged seq as the acknowledged message;
- ``ack_conflict``: two different messages were acknowledged with the same (conv, seq);
- ``reordered``: a send started after an earlier send of the same sender to the same conversation was
  acknowledged, yet got a lower seq (the order a user typed in is the order everyone reads);
- ``refused_stored``: a send refused with an error (nothing stored, the client was told) is stored;
- ``copy_missing`` / ``copy_extra`` / ``copy_duplicated`` / ``copy_reordered``: a member's copy of a
  conversation, after its sync, differs from what is stored (a dropped push that sync did not recover, a
  message shown twice or out of order).
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

KINDS = (
    "lost",
    "duplicated",
    "reordered",
    "gapped",
    "refused_stored",
    "ack_conflict",
    "copy_missing",
    "copy_extra",
    "copy_duplicated",
    "copy_reordered",
)
Msg = Mapping[str, Any]


@dataclass(frozen=True)
class Acked:
    """A send the server acknowledged; ``sent_at``/``acked_at`` on any one monotonic clock."""

    conv: str
    seq: int
    id: str
    sender: int
    cmid: str
    sent_at: float = 0.0
    acked_at: float = 0.0


@dataclass(frozen=True)
class Refused:
    """A send the server refused with an error code: it promised that nothing was stored."""

    conv: str
    sender: int
    cmid: str
    code: str


@dataclass
class Ledger:
    """What the senders were told."""

    acked: list[Acked] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)


@dataclass
class Verdict:
    violations: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    #: Messages from others a member holds that arrived as a push, and those its sync recovered.
    delivered_live: int = 0
    recovered_by_sync: int = 0
    messages: int = 0

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def add(self, kind: str, problem: str) -> None:
        self.violations[kind] += 1
        if len(self.problems) < 50:
            self.problems.append(f"{kind}: {problem}")

    def figures(self) -> dict[str, Any]:
        return {
            "messages_stored": self.messages,
            "delivered_live": self.delivered_live,
            "recovered_by_sync": self.recovered_by_sync,
            **{kind: self.violations[kind] for kind in KINDS},
        }


def check(
    truth: Mapping[str, Sequence[Msg]],
    ledger: Ledger,
    copies: Mapping[tuple[int, str], Sequence[Msg]] | None = None,
    live: Mapping[int, Iterable[str]] | None = None,
    first_seq: Mapping[str, int] | None = None,
) -> Verdict:
    """Check every conversation of ``truth`` (conv -> messages read from the server, in the order it returned
    them, from ``first_seq[conv]`` (default 1) on) against ``ledger`` and the members' ``copies``
    ((user, conv) -> messages the user holds from ``first_seq`` on, in the order the client shows them).
    ``live``: user -> ids of messages that reached the user as pushes (for the figures only)."""
    verdict = Verdict()
    first = first_seq or {}
    for conv, messages in truth.items():
        verdict.messages += len(messages)
        _check_stored(conv, messages, first.get(conv, 1), verdict)
    _check_acks(truth, ledger.acked, first, verdict)
    _check_order(ledger.acked, verdict)
    _check_refused(truth, ledger.refused, verdict)
    live_sets = {user: set(ids) for user, ids in (live or {}).items()}
    for (user, conv), held in (copies or {}).items():
        stored = truth.get(conv)
        if stored is None:
            continue
        _check_copy(user, conv, stored, held, verdict)
        others = {m["id"] for m in held if m["sender"] != user and m.get("type") != "system"}
        arrived = live_sets.get(user, set())
        verdict.delivered_live += len(others & arrived)
        verdict.recovered_by_sync += len(others - arrived)
    return verdict


def _check_stored(conv: str, messages: Sequence[Msg], first: int, verdict: Verdict) -> None:
    seqs = [m["seq"] for m in messages]
    if seqs != list(range(first, first + len(seqs))):
        verdict.add("gapped", f"{conv}: seqs from {first} are {_short(seqs)}")
    keys = Counter((m["sender"], m["cmid"]) for m in messages)
    for key, n in keys.items():
        if n > 1:
            verdict.add("duplicated", f"{conv}: (sender, cmid) {key} stored {n} times")


def _check_acks(
    truth: Mapping[str, Sequence[Msg]], acked: Sequence[Acked], first: Mapping[str, int], verdict: Verdict
) -> None:
    by_seq = {conv: {m["seq"]: m for m in messages} for conv, messages in truth.items()}
    seen: dict[tuple[str, int], Acked] = {}
    for ack in acked:
        if ack.conv not in by_seq or ack.seq < first.get(ack.conv, 1):
            continue  # not a conversation (or a range) this check covers
        earlier = seen.setdefault((ack.conv, ack.seq), ack)
        if (earlier.id, earlier.sender, earlier.cmid) != (ack.id, ack.sender, ack.cmid):
            verdict.add("ack_conflict", f"{ack.conv} seq {ack.seq} acked as {earlier.id} and {ack.id}")
        m = by_seq[ack.conv].get(ack.seq)
        if m is None or (m["id"], m["sender"], m["cmid"]) != (ack.id, ack.sender, ack.cmid):
            verdict.add("lost", f"{ack.conv} seq {ack.seq}: acked {ack.id}, stored {_brief(m)}")


def _check_order(acked: Sequence[Acked], verdict: Verdict) -> None:
    """A send issued after an earlier send of the same sender to the same conversation was acknowledged must
    get a higher seq. (Sends in flight together may be stored in either order.)"""
    streams: dict[tuple[int, str], list[Acked]] = {}
    for ack in acked:
        streams.setdefault((ack.sender, ack.conv), []).append(ack)
    for (sender, conv), acks in streams.items():
        by_ack = sorted(acks, key=lambda a: a.acked_at)
        pending: list[tuple[float, int, str]] = [(a.acked_at, a.seq, a.id) for a in by_ack]
        heapq.heapify(pending)
        highest: tuple[int, str] = (0, "")
        for ack in sorted(acks, key=lambda a: a.sent_at):
            while pending and pending[0][0] < ack.sent_at:
                _, seq, mid = heapq.heappop(pending)
                highest = max(highest, (seq, mid))
            if ack.seq < highest[0]:
                verdict.add(
                    "reordered",
                    f"{conv}: sender {sender}'s {ack.id} (sent after {highest[1]} at seq {highest[0]} was "
                    f"acked) got seq {ack.seq}",
                )


def _check_refused(truth: Mapping[str, Sequence[Msg]], refused: Sequence[Refused], verdict: Verdict) -> None:
    stored = {(conv, m["sender"], m["cmid"]) for conv, messages in truth.items() for m in messages}
    for r in refused:
        if (r.conv, r.sender, r.cmid) in stored:
            verdict.add("refused_stored", f"{r.conv}: {r.sender}/{r.cmid} refused ({r.code}) but stored")


def _check_copy(user: int, conv: str, stored: Sequence[Msg], held: Sequence[Msg], verdict: Verdict) -> None:
    ids = [m["id"] for m in held]
    counts = Counter(ids)
    for mid, n in counts.items():
        if n > 1:
            verdict.add("copy_duplicated", f"user {user} holds {mid} of {conv} {n} times")
    seqs = [m["seq"] for m in held]
    if any(b <= a for a, b in itertools.pairwise(seqs)):
        verdict.add("copy_reordered", f"user {user} shows {conv} in the order {_short(seqs)}")
    stored_ids = [m["id"] for m in stored]
    mine = set(counts)
    for m in stored:
        if m["id"] not in mine:
            verdict.add("copy_missing", f"user {user} lacks {conv} seq {m['seq']} ({m['id']})")
    extra = mine - set(stored_ids)
    for mid in sorted(extra):
        verdict.add("copy_extra", f"user {user} holds {mid} in {conv}, which the server does not")


def _short(seqs: Sequence[int]) -> str:
    return str(list(seqs[:20])) + (" ..." if len(seqs) > 20 else "")


def _brief(m: Msg | None) -> str:
    return "nothing" if m is None else f"{m['id']} from {m['sender']}/{m['cmid']}"
