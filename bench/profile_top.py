"""Summarise a py-spy ``--format raw`` (collapsed stacks) file: the hottest functions by self and total time.

py-spy record --pid PID --duration 10 --format raw -o prof.raw
python bench/profile_top.py prof.raw [--top 30] [--filter sqlalchemy]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::(?P<line>\d+))?\)$")


def short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    path = m["file"]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{m['func']} ({path})"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("raw", type=Path)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--filter", default="", help="only frames whose text contains this")
    args = p.parse_args()
    self_t: Counter[str] = Counter()
    total_t: Counter[str] = Counter()
    samples = 0
    for line in args.raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [short(f) for f in stack.split(";")]
        self_t[frames[-1]] += n
        for f in set(frames):
            total_t[f] += n
    print(f"{samples} samples")
    for title, counter in (("self", self_t), ("total (inclusive)", total_t)):
        print(f"\n-- top by {title} --")
        for func, n in counter.most_common():
            if args.filter and args.filter not in func:
                continue
            print(f"{100 * n / samples:6.1f}%  {func}")
            args.top -= 1
            if args.top <= 0:
                break
        args.top = p.parse_args().top


if __name__ == "__main__":
    main()
