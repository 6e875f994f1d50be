"""A generated embedded install for the migration test and bench/lifecycle.py: users, friendships, private
chats and groups with their members, ``messages`` spread over them (gap-free seqs), and media — uploads,
their blobs in the blob directory, and messages carrying them. Rows are written in bulk, directly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import sqlite3
from pathlib import Path

from hubbub.engines.storage.sql import SqlStorage


def generate(
    data_dir: Path, messages: int, users: int = 200, groups: int = 20, files: int = 60
) -> dict[str, int]:
    data_dir.mkdir(parents=True, exist_ok=True)
    db = data_dir / "hubbub.db"

    async def schema() -> None:
        storage = SqlStorage(f"sqlite+aiosqlite:///{db}")
        await storage.start()
        await storage.close()

    asyncio.run(schema())
    rnd = random.Random(22)
    now = 1_700_000_000_000
    conn = sqlite3.connect(db)
    conn.executemany(
        "INSERT INTO users (id, username, username_lower, nickname, signature, password_hash, banned, created_at, "
        "is_admin) VALUES (?, ?, ?, ?, '', 'x', 0, ?, ?)",
        [(i, f"gen{i}", f"gen{i}", f"Gen {i}", now, i == 1) for i in range(1, users + 1)],
    )
    pairs = sorted({tuple(sorted(rnd.sample(range(1, users + 1), 2))) for _ in range(users * 2)})
    conn.executemany(
        "INSERT INTO friendships VALUES (?, ?, ?)",
        [(a, b, now) for a, b in pairs] + [(b, a, now) for a, b in pairs],
    )
    convs: dict[str, list[int]] = {f"p:{a}:{b}": [a, b] for a, b in pairs[:users]}
    for g in range(1, groups + 1):
        members = rnd.sample(range(1, users + 1), rnd.randint(3, 60))
        conn.execute(
            "INSERT INTO groups (id, name, notice, owner_id, invite_policy, muted_all, dismissed, member_count, "
            "created_at, hot, frozen) VALUES (?, ?, '', ?, 'members', 0, 0, ?, ?, 0, 0)",
            (g, f"group {g}", members[0], len(members), now),
        )
        conn.executemany(
            "INSERT INTO group_members (group_id, user_id, role, nickname, dnd, muted_until, joined_at) "
            "VALUES (?, ?, ?, '', 0, 0, ?)",
            [(g, uid, "owner" if k == 0 else "member", now) for k, uid in enumerate(members)],
        )
        convs[f"g:{g}"] = members
    blob_root = data_dir / "blobs"
    uploads: list[tuple[str, int]] = []
    for f in range(files):
        data = f"generated file {f}\n".encode() * rnd.randint(1, 2000)
        key = hashlib.sha256(data).hexdigest()
        path = blob_root / key[:2] / key[2:4] / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        owner = rnd.randint(1, users)
        upload_id = hashlib.md5(f"u{f}".encode()).hexdigest()
        conn.execute("INSERT INTO blobs VALUES (?, ?, ?)", (key, len(data), now))
        conn.execute(
            "INSERT INTO uploads (id, owner_id, kind, blob, thumb, size, mime, name, meta, created_at) "
            "VALUES (?, ?, 'file', ?, NULL, ?, 'text/plain', ?, '{}', ?)",
            (upload_id, owner, key, len(data), f"file{f}.txt", now),
        )
        uploads.append((upload_id, owner))
    names = sorted(convs)
    tops = dict.fromkeys(names, 0)
    rows = []
    for i in range(messages):
        conv = names[rnd.randrange(len(names))] if i >= len(names) else names[i]
        tops[conv] += 1
        members = convs[conv]
        sender = members[rnd.randrange(len(members))]
        if i % 1000 == 0 and uploads:
            upload_id, _ = uploads[(i // 1000) % len(uploads)]
            body, kind = json.dumps({"upload": upload_id, "kind": "file", "name": "f", "size": 1}), "file"
            conn.execute("INSERT OR IGNORE INTO upload_refs VALUES (?, ?, 1, ?)", (upload_id, sender, now))
        else:
            body, kind = json.dumps({"text": f"message {i}"}), "text"
        rows.append((conv, tops[conv], 10_000_000 + i, sender, f"c{i}", kind, body, now + i))
        if len(rows) >= 20_000:
            conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)", rows)
            rows.clear()
    conn.executemany("INSERT INTO messages VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)", rows)
    conn.executemany(
        "INSERT INTO conversations (conv, max_seq, updated_at) VALUES (?, ?, ?)",
        [(c, tops[c], now) for c in names],
    )
    conn.executemany(
        "INSERT INTO conv_members (user_id, conv, read_seq, min_seq, mention_seq) VALUES (?, ?, 0, 0, 0)",
        [
            (
                uid,
                c,
            )
            for c in names
            for uid in convs[c]
        ],
    )
    conn.commit()
    conn.close()
    return {"messages": messages, "conversations": len(names), "files": files, "users": users}
