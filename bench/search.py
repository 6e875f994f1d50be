"""Message search figures (issue 16): latency over a large store, index size, indexing rate.

Generates ``--rows`` messages (mixed English and Chinese, realistic lengths) straight into the database in
bulk (not through the socket), lets the real indexer (``SqlStorage.index_messages``, what each node's
background task calls) index them all, then times ``search_messages`` for one-conversation and
all-conversation searches of several query shapes.

    .venv/bin/python bench/search.py --engine sqlite --rows 1000000
    .venv/bin/python bench/search.py --engine postgresql --rows 1000000
See docs/benchmarks.md, "Search".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hubbub.config import Config
from hubbub.core import searchtext
from hubbub.engines.storage.base import SearchQuery
from hubbub.engines.storage.sql import SqlStorage

ZH = (
    "我们 明天 北京 开会 会议 纪要 周五 项目 进度 客户 需求 文档 测试 上线 服务器 数据库 问题 解决 "
    "方案 时间 下午 上午 晚上 吃饭 朋友 公司 老板 同事 电话 邮件 报告 计划 预算 合同 价格 产品 设计 "
    "用户 体验 手机 电脑 网络 系统 更新 版本 发布 周末 旅行 上海 广州 深圳 天气 下雨 咖啡 中午 好的 "
    "谢谢 没问题 收到 可以 不行 马上 已经 还是 因为 所以 但是 如果 今天 昨天 后天 一起 看看 讨论"
).split()
EN = (
    "the meeting project deadline tomorrow friday report budget client server database release update "
    "version design review please thanks okay sure lunch coffee weekend travel weather rain office call "
    "email schedule plan contract price product user experience phone laptop network system test deploy "
    "issue fix problem solution morning afternoon evening team manager colleague document draft final "
    "agenda notes quarterly numbers sales marketing support ticket customer feedback launch roadmap"
).split()
QUERIES = {
    "en word": lambda r: r.choice(EN),
    "en two words": lambda r: f"{r.choice(EN)} {r.choice(EN)}",
    "zh 2 chars (short path)": lambda r: r.choice([w for w in ZH if len(w) == 2]),
    "zh 4 chars": lambda r: (
        r.choice([w for w in ZH if len(w) == 2]) + r.choice([w for w in ZH if len(w) == 2])
    ),
    "rare token": lambda r: f"zq{r.randrange(2000):04d}",
}


def sentence(r: random.Random) -> str:
    words = max(1, min(60, int(r.lognormvariate(2.0, 0.7))))
    if r.random() < 0.5:
        text = "".join(r.choice(ZH) for _ in range(words))
    else:
        text = " ".join(r.choice(EN) for _ in range(words)).capitalize()
    if r.random() < 0.001:
        text += f" zq{r.randrange(2000):04d}"
    return text


class World:
    """Users, conversations and who is in them: most private pairs, a few groups with late joiners."""

    def __init__(self, rows: int, seed: int = 7) -> None:
        r = random.Random(seed)
        self.users = max(200, rows // 200)
        self.convs: list[str] = []
        self.members: list[tuple[int, str, int]] = []  # (user, conv, min_seq)
        pairs = set()
        while len(pairs) < self.users * 4:
            a, b = r.randrange(1, self.users + 1), r.randrange(1, self.users + 1)
            if a != b:
                pairs.add((min(a, b), max(a, b)))
        for a, b in sorted(pairs):
            conv = f"p:{a}:{b}"
            self.convs.append(conv)
            self.members += [(a, conv, 0), (b, conv, 0)]
        self.groups = max(10, rows // 10_000)
        for g in range(1, self.groups + 1):
            conv = f"g:{g}"
            self.convs.append(conv)
            for u in r.sample(range(1, self.users + 1), min(50, self.users)):
                self.members.append((u, conv, 0 if r.random() < 0.8 else r.randrange(1, 200)))
        # The searching user: in 40 private conversations and 10 groups.
        self.me = 1
        for i in range(40):
            conv = f"p:1:{self.users + 1 + i}"
            self.convs.append(conv)
            self.members += [(1, conv, 0), (self.users + 1 + i, conv, 0)]
        for g in range(1, 11):
            self.members.append((1, f"g:{g}", 0))
        self.mine = sorted({c for u, c, _ in self.members if u == 1})

    def messages(self, rows: int, seed: int = 11) -> Any:
        r = random.Random(seed)
        seqs: dict[str, int] = {}
        senders: dict[str, list[int]] = {}
        for u, c, _ in self.members:
            senders.setdefault(c, []).append(u)
        groups = [c for c in self.convs if c.startswith("g:")]
        privates = [c for c in self.convs if c.startswith("p:")]
        ts = 1_700_000_000_000
        for i in range(rows):
            conv = r.choice(groups) if r.random() < 0.3 else r.choice(privates)
            seq = seqs[conv] = seqs.get(conv, 0) + 1
            ts += r.randrange(1, 200)
            kind, body = "text", {"text": sentence(r)}
            if r.random() < 0.03:
                kind, body = (
                    "file",
                    {"upload": "u", "kind": "file", "name": f"{r.choice(EN)}-{i}.pdf", "size": 1},
                )
            yield (conv, seq, 10_000_000 + i, r.choice(senders[conv]), f"c{i}", kind, json.dumps(body), ts)
        self.max_seq = seqs


async def generate_sqlite(path: Path, world: World, rows: int) -> SqlStorage:
    storage = SqlStorage(f"sqlite+aiosqlite:///{path}")
    await storage.start()
    await storage.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.executemany(
        "INSERT INTO users (id, username, username_lower, nickname, password_hash, created_at) VALUES (?,?,?,?,?,0)",
        [(u, f"u{u}", f"u{u}", f"U{u}", "x") for u in range(1, world.users + 42)],
    )
    it = world.messages(rows)
    while True:
        chunk = [row for _, row in zip(range(50_000), it, strict=False)]
        if not chunk:
            break
        db.executemany(
            "INSERT INTO messages (conv, seq, id, sender, cmid, type, body, ts, recalled) VALUES (?,?,?,?,?,?,?,?,0)",
            chunk,
        )
        db.commit()
    db.executemany(
        "INSERT INTO conversations (conv, max_seq, updated_at) VALUES (?,?,0)",
        [(c, world.max_seq.get(c, 0)) for c in world.convs],
    )
    db.executemany(
        "INSERT OR IGNORE INTO conv_members (user_id, conv, read_seq, min_seq, mention_seq) VALUES (?,?,0,?,0)",
        world.members,
    )
    db.commit()
    db.close()
    storage = SqlStorage(f"sqlite+aiosqlite:///{path}")
    await storage.start()
    return storage


async def generate_postgres(url: str, world: World, rows: int) -> SqlStorage:
    import asyncpg

    storage = SqlStorage(Config(database=url).database_url)
    await storage.start()
    conn = await asyncpg.connect(url)
    await conn.copy_records_to_table(
        "users",
        records=[
            (u, f"u{u}", f"u{u}", f"U{u}", "", None, "x", False, 0, False) for u in range(1, world.users + 42)
        ],
        columns=[
            "id",
            "username",
            "username_lower",
            "nickname",
            "signature",
            "avatar",
            "password_hash",
            "banned",
            "created_at",
            "is_admin",
        ],
    )
    it = world.messages(rows)
    while True:
        chunk = [(*row, False) for _, row in zip(range(50_000), it, strict=False)]
        if not chunk:
            break
        await conn.copy_records_to_table(
            "messages",
            records=chunk,
            columns=["conv", "seq", "id", "sender", "cmid", "type", "body", "ts", "recalled"],
        )
    await conn.copy_records_to_table(
        "conversations",
        records=[(c, world.max_seq.get(c, 0), 0) for c in world.convs],
        columns=["conv", "max_seq", "updated_at"],
    )
    seen = set()
    members = []
    for u, c, m in world.members:
        if (u, c) not in seen:
            seen.add((u, c))
            members.append((u, c, 0, m, 0))
    await conn.copy_records_to_table(
        "conv_members", records=members, columns=["user_id", "conv", "read_seq", "min_seq", "mention_seq"]
    )
    await conn.execute("ANALYZE")
    await conn.close()
    return storage


async def size_of(storage: SqlStorage, path: Path | None) -> int:
    async with storage.engine.connect() as conn:
        from sqlalchemy import text

        if storage.dialect == "sqlite":
            pages = (await conn.execute(text("PRAGMA page_count"))).scalar_one()
            size = (await conn.execute(text("PRAGMA page_size"))).scalar_one()
            return int(pages * size)
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT pg_total_relation_size('message_search') + pg_relation_size('ix_messages_rid')"
                    )
                )
            ).scalar_one()
        )


async def run(args: argparse.Namespace) -> None:
    world = World(args.rows)
    tmp = Path(tempfile.mkdtemp(prefix="hubbub-search-bench-"))
    pg = None
    t0 = time.monotonic()
    print(
        f"engine {args.engine}, {args.rows:,} messages, {world.users:,} users, {len(world.convs):,} "
        f"conversations; nproc {os.cpu_count()}, load average {os.getloadavg()}"
    )
    reuse = args.engine == "sqlite" and args.db and Path(args.db).exists()
    if reuse:
        # A store this script generated (and indexed) before, with the same --rows: only the queries run.
        storage = SqlStorage(f"sqlite+aiosqlite:///{args.db}")
        await storage.start()
    elif args.engine == "sqlite":
        storage = await generate_sqlite(Path(args.db) if args.db else tmp / "hubbub.db", world, args.rows)
    else:
        from tests import servers

        pg = servers.PostgresServer().start()
        storage = await generate_postgres(pg.create_database(), world, args.rows)
    print(("reused " + args.db) if reuse else f"generated in {time.monotonic() - t0:.1f} s")
    before = await size_of(storage, None) if storage.dialect == "sqlite" else 0
    t0 = time.monotonic()
    cpu0 = time.process_time()
    total = 0
    last = t0
    while True:
        progress = await storage.index_messages(args.batch)
        total += progress.indexed
        if time.monotonic() - last > 15:
            last = time.monotonic()
            print(f"  indexing: {total:,} indexed, watermark {progress.watermark:,} of {progress.newest:,}")
        if progress.indexed < args.batch:
            break
    took = time.monotonic() - t0
    print(
        f"indexed {total:,} messages in {took:.1f} s: {total / took:,.0f} messages/s (batches of {args.batch})"
    )
    cpu = time.process_time() - cpu0
    if total:
        where = "this process, SQLite included" if storage.dialect == "sqlite" else "this process only"
        print(f"  CPU of {where}: {cpu:.1f} s = {cpu / total * 1000:.3f} CPU s per 1,000 messages")
    if storage.dialect == "postgresql":
        async with storage.engine.connect() as conn:
            from sqlalchemy import text

            await conn.execute(text("ANALYZE message_search"))
            await conn.commit()
    index_bytes = await size_of(storage, None) - before
    print(
        f"index size: {index_bytes / 2**20:,.1f} MiB = {index_bytes / 2**20 / args.rows * 1e6:,.1f} MiB per million messages"
    )

    r = random.Random(3)
    print(f"\nsearcher: user 1, in {len(world.mine)} conversations; {args.queries} queries per row; limit 20")
    print(f"{'query':28} {'scope':6} {'p50 ms':>8} {'p99 ms':>8} {'mean hits':>9}")
    for name, make in QUERIES.items():
        for scope in ("one", "all"):
            times, hits = [], []
            for _ in range(args.queries):
                q = make(r)
                conv = r.choice(world.mine) if scope == "one" else None
                query = SearchQuery(user_id=1, terms=searchtext.terms_of(q), conv=conv, limit=20)
                started = time.perf_counter()
                page = await storage.search_messages(query)
                times.append((time.perf_counter() - started) * 1000)
                hits.append(len(page.hits))
            times.sort()
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            print(
                f"{name:28} {scope:6} {statistics.median(times):8.2f} {p99:8.2f} {statistics.mean(hits):9.1f}"
            )
    await storage.close()
    if pg is not None:
        pg.stop()
    print(f"load average at the end {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=5000, help="messages per indexer call")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--db", help="SQLite: generate into this file, or reuse it if it exists")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
