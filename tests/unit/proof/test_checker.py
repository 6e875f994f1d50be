"""The exactly-once checker must be able to fail: each fault it exists for, fed to it, is caught."""

from __future__ import annotations

from typing import Any

from hubbub.proof.checker import Acked, Ledger, Refused, check

CONV = "p:1:2"


def msg(seq: int, sender: int = 1, cmid: str | None = None, mid: str | None = None) -> dict[str, Any]:
    return {
        "id": mid or f"m{seq}",
        "conv": CONV,
        "seq": seq,
        "sender": sender,
        "cmid": cmid or f"c{seq}",
        "type": "text",
    }


def acked(seq: int, sent_at: float, acked_at: float, sender: int = 1) -> Acked:
    return Acked(CONV, seq, f"m{seq}", sender, f"c{seq}", sent_at, acked_at)


def healthy() -> tuple[list[dict[str, Any]], Ledger]:
    stored = [msg(1), msg(2), msg(3, sender=2)]
    ledger = Ledger(acked=[acked(1, 0, 1), acked(2, 2, 3), acked(3, 0, 5, sender=2)])
    return stored, ledger


def test_a_healthy_history_passes_with_its_figures() -> None:
    stored, ledger = healthy()
    copies = {(2, CONV): stored, (1, CONV): stored}
    verdict = check({CONV: stored}, ledger, copies, live={2: {"m1"}})
    assert verdict.ok, verdict.problems
    assert (verdict.delivered_live, verdict.recovered_by_sync, verdict.messages) == (1, 2, 3)


def test_a_dropped_push_that_sync_did_not_recover_is_caught() -> None:
    stored, ledger = healthy()
    copies = {(2, CONV): [stored[0], stored[2]]}  # the push of seq 2 was dropped; no sync filled it
    verdict = check({CONV: stored}, ledger, copies)
    assert verdict.violations["copy_missing"] == 1
    assert not verdict.ok


def test_a_duplicated_store_is_caught() -> None:
    stored, ledger = healthy()
    stored.append(msg(4, cmid="c2", mid="m4"))  # the retry of c2 stored a second time
    verdict = check({CONV: stored}, ledger)
    assert verdict.violations["duplicated"] == 1


def test_a_lost_acknowledged_message_and_its_gap_are_caught() -> None:
    stored, ledger = healthy()
    del stored[1]
    verdict = check({CONV: stored}, ledger)
    assert verdict.violations["lost"] == 1
    assert verdict.violations["gapped"] == 1


def test_a_gapped_stream_is_caught() -> None:
    stored = [msg(1), msg(2), msg(4)]
    assert check({CONV: stored}, Ledger()).violations["gapped"] == 1


def test_a_reordered_send_is_caught_but_concurrent_sends_are_not() -> None:
    # c2 was sent after c1's ack (t=1) yet stored before it.
    stored = [msg(1, cmid="b", mid="mb"), msg(2, cmid="a", mid="ma")]
    late = Ledger(acked=[Acked(CONV, 2, "ma", 1, "a", 0, 1), Acked(CONV, 1, "mb", 1, "b", 2, 3)])
    assert check({CONV: stored}, late).violations["reordered"] == 1
    # In flight together: either order is right.
    together = Ledger(acked=[Acked(CONV, 2, "ma", 1, "a", 0, 3), Acked(CONV, 1, "mb", 1, "b", 1, 2)])
    assert check({CONV: stored}, together).ok


def test_a_refused_send_that_was_stored_is_caught() -> None:
    stored, ledger = healthy()
    ledger.refused.append(Refused(CONV, 1, "c2", "unavailable"))
    assert check({CONV: stored}, ledger).violations["refused_stored"] == 1
    ledger.refused[0] = Refused(CONV, 1, "never-stored", "unavailable")
    assert check({CONV: stored}, ledger).ok


def test_conflicting_acks_and_copy_faults_are_caught() -> None:
    stored, ledger = healthy()
    ledger.acked.append(Acked(CONV, 2, "mX", 1, "cX", 9, 10))
    copies = {(2, CONV): [stored[1], stored[0], stored[0], msg(9, mid="ghost")]}
    verdict = check({CONV: stored}, ledger, copies)
    assert verdict.violations["ack_conflict"] == 1
    assert verdict.violations["copy_reordered"] == 1
    assert verdict.violations["copy_duplicated"] == 1
    assert verdict.violations["copy_extra"] == 1
    assert verdict.violations["copy_missing"] == 1


def test_a_window_starting_later_checks_from_its_first_seq() -> None:
    stored = [msg(5), msg(6)]
    assert check({CONV: stored}, Ledger(), first_seq={CONV: 5}).ok
    assert check({CONV: stored}, Ledger()).violations["gapped"] == 1
