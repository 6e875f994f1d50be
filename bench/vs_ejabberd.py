"""Hubbub and ejabberd side by side, in one sitting, and the ratios issue 19 asks for.

This machine kind's speed varies by about 30 % between days and other sessions share its two cores, so only
figures from the same sitting are compared. In order:

  1. Hubbub 1:1, stored, acked and delivered: ``bench/load_1to1.py`` (1,000 clients, closed loop, peak only)
  2. Hubbub group fan-out, 1,000 online members: ``bench/group_fanout.py``
  3. ejabberd (Debian) driven the same way: ``../shared/peers/run-ejabberd.sh`` (1:1 pairs, then one MUC room
     of all users); with ``--mam`` also a second run archiving every message in SQLite (``MAM=1``)

Every server is pinned to core 0 and its load generator to core 1. The load average (``uptime``) is printed
before each step, and each tool reports its load generator's CPU. Prints the raw output of each step and then:

  1:1 stored msg/s  Hubbub / ejabberd unstored   (target >= 1.5)
  group deliveries/s  Hubbub / ejabberd MUC       (target >= 4)

    .venv/bin/python bench/vs_ejabberd.py                     # about 4 minutes
    .venv/bin/python bench/vs_ejabberd.py --mam --users 1000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS = Path(os.environ.get("HUBBUB_PEERS_DIR", HERE.parent.parent / "shared" / "peers"))
if not PEERS.exists():
    PEERS = Path("/work/shared/peers")


def uptime() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def step(title: str, argv: list[str], env: dict[str, str] | None = None) -> str:
    print(f"\n=== {title}  [{time.strftime('%H:%M:%S')} UTC, load average {uptime()}]", flush=True)
    print("$ " + " ".join(argv), flush=True)
    run = subprocess.run(argv, env={**os.environ, **(env or {})}, capture_output=True, text=True)
    out = run.stdout
    print(out.strip())
    if run.returncode != 0:
        print(run.stderr[-2000:], file=sys.stderr)
    return out


def ejabberd(users: int, secs: int, mam: bool) -> dict[str, float] | None:
    script = PEERS / "run-ejabberd.sh"
    out = step(
        f"ejabberd {'MAM (stored)' if mam else 'unstored'}",
        ["bash", str(script), str(users), str(secs)],
        {"MAM": "1"} if mam else None,
    )
    line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        print("run-ejabberd.sh printed no RESULT line (its own output is above)")
        return None
    return dict(json.loads(line[len("RESULT ") :]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--users", type=int, default=1000, help="clients for 1:1, members for the group")
    p.add_argument("--secs", type=int, default=8, help="seconds measured per phase")
    p.add_argument("--mam", action="store_true", help="also run ejabberd archiving every message (MAM=1)")
    args = p.parse_args()
    py = sys.executable

    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "1to1.json"
        step(
            "Hubbub 1:1 (stored)",
            [
                py,
                str(HERE / "load_1to1.py"),
                "--no-echo",
                "--idle",
                "0",
                "--clients",
                str(args.users),
                "--duration",
                str(args.secs),
                "--rate",
                "1",  # the paced phase is not needed here: 1 msg/s for the drain check only
                "--json",
                str(result),
            ],
        )
        peak = json.loads(result.read_text())["hubbub"]["peak"]
    out = step("Hubbub group fan-out", [py, str(HERE / "group_fanout.py"), "--members", str(args.users)])
    m = re.search(r"deliveries/s\s+([\d,]+)", out)
    fanout = float(m.group(1).replace(",", "")) if m else 0.0
    load = re.search(r"server / load generator CPU\s+(.*)", out)

    ej = ejabberd(args.users, args.secs, mam=False)
    if ej is None:
        raise SystemExit("no ejabberd figures: no ratios")
    ej_mam = ejabberd(args.users, args.secs, mam=True) if args.mam else None

    rows = [
        (
            "1:1 msg/s: Hubbub stored / ejabberd unstored",
            f"{peak['rate']:,} / {ej['chat_1to1_msgs_per_s']:,.0f}",
            peak["rate"] / ej["chat_1to1_msgs_per_s"],
            1.5,
        ),
        (
            "group deliveries/s: Hubbub / ejabberd MUC (w16)",
            f"{fanout:,.0f} / {ej['muc_w16_deliveries_per_s']:,.0f}",
            fanout / ej["muc_w16_deliveries_per_s"],
            4.0,
        ),
    ]
    if ej_mam is not None:
        rows.append(
            (
                "1:1 msg/s: Hubbub stored / ejabberd stored (MAM)",
                f"{peak['rate']:,} / {ej_mam['chat_1to1_msgs_per_s']:,.0f}",
                peak["rate"] / ej_mam["chat_1to1_msgs_per_s"],
                0.0,
            )
        )
    # On a shared machine each server gets a different share of its core: the same ratios per second of the
    # server's own CPU are the steadier comparison (both tools report their server's CPU).
    hub_cpu = float(load.group(1).split("%")[0]) / 100 if load else 0.0
    per_cpu = [
        (
            "1:1 per server CPU second: Hubbub / ejabberd",
            peak["rate"] / max(peak["server_cpu_util"], 1e-9),
            ej["chat_1to1_msgs_per_s"] / max(ej["chat_1to1_msgs_server_cpu%"] / 100, 1e-9),
        ),
        (
            "group per server CPU second: Hubbub / ejabberd",
            fanout / max(hub_cpu, 1e-9),
            ej["muc_w16_deliveries_per_s"] / max(ej["muc_w16_deliveries_server_cpu%"] / 100, 1e-9),
        ),
    ]
    print(f"\n=== ratios  [{time.strftime('%H:%M:%S')} UTC, load average {uptime()}]")
    for name, figures, ratio, target in rows:
        verdict = (
            "" if not target else (f"target >= {target:g}: " + ("met" if ratio >= target else "NOT met"))
        )
        print(f"{name:50} {figures:>20}  {ratio:5.2f}x  {verdict}")
    for name, a, b in per_cpu:
        print(f"{name:50} {f'{a:,.0f} / {b:,.0f}':>20}  {a / b:5.2f}x")
    print(
        f"load generator CPU: Hubbub 1:1 {peak['client_cpu_util']:.0%} (server {peak['server_cpu_util']:.0%}); "
        f"Hubbub group (server / load) {load.group(1) if load else '?'}; ejabberd 1:1 "
        f"{ej['chat_1to1_msgs_client_cpu%']}% (server {ej['chat_1to1_msgs_server_cpu%']}%), MUC "
        f"{ej['muc_w16_deliveries_client_cpu%']}% (server {ej['muc_w16_deliveries_server_cpu%']}%)"
    )


if __name__ == "__main__":
    main()
