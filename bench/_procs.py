"""Starting the servers under test as real processes, pinned to a core, and reading their cost from /proc.

Linux only (taskset, /proc). Everything here is blocking and small; it runs outside the measured windows.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

#: Makes setup fast and keeps rate limits out of the measurement (the bench is about the message path).
FAST_ENV = {
    "HUBBUB_ARGON2_TIME_COST": "1",
    "HUBBUB_ARGON2_MEMORY_KIB": "256",
    "HUBBUB_SEND_RATE": "100000",
    "HUBBUB_SEND_BURST": "100000",
    "HUBBUB_LOGIN_BURST": "100000",
    "HUBBUB_IP_LIMIT_EXEMPT": "127.0.0.0/8",  # per-IP register/login limits: every bench client is local
    "HUBBUB_LOG_LEVEL": "warning",
}

_TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pin_self(core: int | None) -> bool:
    """Pin this (load generator) process to ``core``; False if the machine has no such core."""
    if core is None or core >= (os.cpu_count() or 1):
        return False
    os.sched_setaffinity(0, {core})
    return True


def raise_nofile(want: int) -> int:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class ServerProcess:
    """One server under test: ``argv`` run with ``taskset -c core`` so its every thread stays on that core."""

    def __init__(self, name: str, argv: list[str], port: int, core: int | None, log_path: Path, env=None):
        self.name = name
        self.port = port
        self.log_path = log_path
        full_env = dict(os.environ)
        full_env.update(env or {})
        pinned = core is not None and core < (os.cpu_count() or 1) and shutil.which("taskset")
        cmd = (["taskset", "-c", str(core)] if pinned else []) + argv
        self._log = open(log_path, "wb")
        # taskset execs the command, so the pid is the server's own.
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)
        self.pid = self.proc.pid

    def wait_ready(self, path: str = "/healthz", timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.port}{path}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}")

    def cpu_seconds(self) -> float:
        """utime + stime of the whole process (all threads), in seconds."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _TICK

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def core_busy_seconds(core: int) -> float:
    """Busy time of one core (all processes) from /proc/stat: to see who else ran on the server's core."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)
            return (sum(v[:8]) - idle) / _TICK
    return 0.0


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def hubbub_argv(port: int, data_dir: Path) -> list[str]:
    return [sys.executable, "-m", "hubbub", "serve", "--port", str(port), "--data-dir", str(data_dir)]


def echo_argv(port: int) -> list[str]:
    return [sys.executable, str(Path(__file__).with_name("echo_server.py")), "--port", str(port)]
