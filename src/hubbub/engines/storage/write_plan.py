"""What storing a batch of messages decides, apart from how the statements run.

Two executors store batches: ``SqlStorage._store_messages`` (SQLAlchemy Core, SQLite and PostgreSQL, every
conversation kind) and ``SqliteBatchWriter`` (raw sqlite3 on one thread, private conversations only: the
embedded default's hot path). They differ in how they talk to the database and nothing else: which messages
are new, which are resends, which are refused, which seqs the new ones take and what each caller is told are
decided here, once, by pure functions over what the executor read (the contract tests run both executors).

The steps, in the order an executor calls them inside its transaction:
1. ``lookups``: the (sender, cmid) pairs to look for, grouped by sender;
2. ``split``: given the messages found, the new ones (first of each pair, canonical conversations only) and
   the refused ones;
3. ``admit_groups`` (group messages only): the group rules against the members read in the transaction, and
   who hears of each admitted message;
4. ``by_conversation`` then ``number``: each conversation's new messages in batch order, and, given each
   conversation's new top seq, their seqs (gap-free: ``top - n + 1 .. top``);
5. ``results``: one ``Stored`` or ``Rejected`` per message of the batch, in its order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from hubbub.core.convs import is_canonical, not_a_conversation, parse_private
from hubbub.core.errors import not_found
from hubbub.core.models import Message
from hubbub.engines.storage.base import Admit, GroupFacts, NewMessage, Rejected, Stored

#: A message's idempotency key: (sender, cmid).
Key = tuple[int, str]


def lookups(batch: Iterable[NewMessage]) -> dict[int, set[str]]:
    """sender -> the cmids to look for: what may already be stored."""
    by_sender: dict[int, set[str]] = {}
    for m in batch:
        by_sender.setdefault(m.sender, set()).add(m.cmid)
    return by_sender


def split(
    batch: Sequence[NewMessage], existing: Mapping[Key, Message]
) -> tuple[list[NewMessage], dict[Key, Rejected]]:
    """The messages to store (the first of each key not already stored) and those refused alone: a
    non-canonical conversation id (the edges refuse these; one that got past them fails alone, not its
    batch)."""
    fresh: list[NewMessage] = []
    rejected: dict[Key, Rejected] = {}
    seen: set[Key] = set(existing)
    for m in batch:
        key = (m.sender, m.cmid)
        if key not in seen:
            seen.add(key)
            if is_canonical(m.conv):
                fresh.append(m)
            else:
                rejected[key] = Rejected(not_a_conversation())
    return fresh, rejected


def group_convs(fresh: Iterable[NewMessage]) -> list[str]:
    """The group conversations new messages go to, in lock order (sorted: one order for every writer)."""
    return sorted({m.conv for m in fresh if m.conv.startswith("g:")})


def senders_by_conv(fresh: Iterable[NewMessage], existing: Mapping[Key, Message]) -> dict[str, set[int]]:
    """conv -> who sends (or resent) into it: of a hot group only these members' rows are read."""
    senders: dict[str, set[int]] = {}
    for prior in existing.values():
        senders.setdefault(prior.conv, set()).add(prior.sender)
    for m in fresh:
        senders.setdefault(m.conv, set()).add(m.sender)
    return senders


class Fanout:
    """Who hears of the new messages of each group conversation, as read inside the transaction."""

    __slots__ = ("hot", "quiet", "recipients")

    def __init__(self) -> None:
        self.recipients: dict[str, tuple[int, ...]] = {}
        self.quiet: dict[str, tuple[int, ...]] = {}
        self.hot: set[str] = set()


def admit_groups(
    fresh: list[NewMessage],
    facts: Mapping[str, GroupFacts],
    groups: Iterable[str],
    admit: Admit | None,
    rejected: dict[Key, Rejected],
) -> tuple[list[NewMessage], Fanout]:
    """Apply the group rules (``admit``) to the new group messages; a refusal goes into ``rejected``, and
    a message to a group that does not exist is refused as ``not_found``. Returns what is admitted and who
    hears of it."""
    fanout = Fanout()
    group_set = set(groups)
    admitted = []
    for m in fresh:
        found = facts.get(m.conv)
        if found is not None:
            error = admit(m, found) if admit is not None else None
            if error is not None:
                rejected[(m.sender, m.cmid)] = Rejected(error)
                continue
            if found.hot:
                fanout.hot.add(m.conv)
            elif m.conv not in fanout.recipients:
                fanout.recipients[m.conv] = tuple(found.members)
                fanout.quiet[m.conv] = quiet_of(found)
        elif m.conv in group_set:
            rejected[(m.sender, m.cmid)] = Rejected(not_found("group"))
            continue
        admitted.append(m)
    return admitted, fanout


def duplicate_groups(existing: Mapping[Key, Message]) -> set[str]:
    """Group conversations of resends: their members are read, so the resend is pushed to them again."""
    return {e.conv for e in existing.values() if e.conv.startswith("g:")}


def pushed_groups(convs: Iterable[str], facts: Mapping[str, GroupFacts]) -> list[str]:
    """Of ``convs``, those that exist and are pushed (not hot): their members' floors are read."""
    return [c for c in convs if c in facts and not facts[c].hot]


def by_conversation(fresh: Iterable[NewMessage]) -> dict[str, list[NewMessage]]:
    """conv -> its new messages in batch order: each conversation takes ``len`` seqs at once."""
    per_conv: dict[str, list[NewMessage]] = {}
    for m in fresh:
        per_conv.setdefault(m.conv, []).append(m)
    return per_conv


def number(per_conv: Mapping[str, list[NewMessage]], top: Mapping[str, int]) -> dict[Key, Message]:
    """The stored form of each new message, given each conversation's max seq after taking its seqs."""
    stored: dict[Key, Message] = {}
    for conv, ms in per_conv.items():
        first = top[conv] - len(ms) + 1
        for offset, m in enumerate(ms):
            stored[(m.sender, m.cmid)] = Message(
                id=str(m.id),
                conv=conv,
                seq=first + offset,
                sender=m.sender,
                type=m.type,
                body=m.body,
                ts=m.ts,
                cmid=m.cmid,
            )
    return stored


def quiet_of(facts: GroupFacts) -> tuple[int, ...]:
    """The members who set do-not-disturb on the group."""
    return tuple(uid for uid, member in facts.members.items() if member.dnd)


def results(
    batch: Sequence[NewMessage],
    existing: Mapping[Key, Message],
    rejected: Mapping[Key, Rejected],
    stored: Mapping[Key, Message],
    fanout: Fanout | None = None,
    facts: Mapping[str, GroupFacts] | None = None,
    floors: Mapping[str, Mapping[int, int]] | None = None,
) -> list[Stored | Rejected]:
    """One result per message of ``batch``, in its order.

    A resend (``duplicate``) is told who should hear of its message now, as a new message is, so the service
    pushes it again (its first try may have been stored by a node that died before pushing): the private
    pair; nobody for a hot group (signalled instead); for a pushed group, the members who can read it (their
    ``floors`` are below its seq: not those who joined after it). The same key twice in one batch is one
    message: the second is a duplicate of the first.
    """
    fanout = fanout or _NO_FANOUT
    facts = facts or {}
    floors = floors or {}
    out: list[Stored | Rejected] = []
    first_seen: set[Key] = set()
    for m in batch:
        key = (m.sender, m.cmid)
        found = existing.get(key)
        if found is not None:
            pair = parse_private(found.conv)
            group = facts.get(found.conv)
            if pair is not None:
                out.append(Stored(message=found, duplicate=True, recipients=pair))
            elif group is not None and group.hot:
                out.append(Stored(message=found, duplicate=True, hot=True))
            else:
                who = tuple(user for user, floor in floors.get(found.conv, {}).items() if floor < found.seq)
                quiet_now = quiet_of(group) if group is not None else ()
                out.append(
                    Stored(
                        message=found,
                        duplicate=True,
                        recipients=who,
                        quiet=tuple(u for u in quiet_now if u in who),
                    )
                )
        elif key in rejected:
            out.append(rejected[key])
        else:
            message = stored[key]
            conv = message.conv
            out.append(
                Stored(
                    message=message,
                    duplicate=key in first_seen,
                    recipients=fanout.recipients.get(conv, m.members),
                    hot=conv in fanout.hot,
                    quiet=fanout.quiet.get(conv, ()),
                )
            )
            first_seen.add(key)
    return out


_NO_FANOUT = Fanout()
