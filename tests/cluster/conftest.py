"""A real 3-node cluster for the failure tests: node processes sharing a throwaway Redis and PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers

TIMEOUT_FACTOR = float(os.environ.get("HUBBUB_TEST_TIMEOUT_FACTOR", "1"))


class NodeProcess:
    """``python -m hubbub serve`` as a cluster node; ``kill()`` is SIGKILL, as a crash."""

    def __init__(self, node_id: str, redis_url: str, database: str, data_dir: Path, env: dict[str, str]):
        self.node_id = node_id
        self.port = servers.free_port()
        self.args = [
            sys.executable,
            *("-m", "hubbub", "serve", "--port", str(self.port), "--node-id", node_id),
            *("--redis", redis_url, "--database", database, "--data-dir", str(data_dir)),
        ]
        self.env = env
        self.log_path = data_dir / f"{node_id}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> NodeProcess:
        return self.spawn().wait_healthy()

    def spawn(self) -> NodeProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        return self

    def wait_healthy(self) -> NodeProcess:
        assert self.proc is not None
        deadline = time.monotonic() + 20 * TIMEOUT_FACTOR
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node {self.node_id} exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"node {self.node_id} did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Cluster:
    def __init__(self, redis: servers.RedisServer, pg: servers.PostgresServer, nodes: list[NodeProcess]):
        self.redis = redis
        self.pg = pg
        self.nodes = nodes

    def url(self, i: int) -> str:
        return self.nodes[i].url


@contextlib.contextmanager
def running_cluster(tmp: Path, extra_env: dict[str, str] | None = None, size: int = 3) -> Iterator[Cluster]:
    """``size`` node processes over a throwaway Redis and PostgreSQL, with ``extra_env`` settings."""
    redis = servers.RedisServer().start()
    pg = servers.PostgresServer().start()
    env = {
        **os.environ,
        "HUBBUB_JWT_SECRET": "cluster-test-secret-" + "x" * 32,
        "HUBBUB_ARGON2_TIME_COST": "1",
        "HUBBUB_ARGON2_MEMORY_KIB": "256",
        "HUBBUB_LOGIN_BURST": "1000",
        "HUBBUB_SEND_BURST": "2000",
        "HUBBUB_LOG_LEVEL": "warning",
        **(extra_env or {}),
    }
    nodes: list[NodeProcess] = []
    try:
        database = pg.create_database("cluster")
        for i in range(1, size + 1):
            nodes.append(NodeProcess(f"n{i}", redis.url, database, tmp, env))
        nodes[0].start()  # the first one runs the migrations alone
        for node in nodes[1:]:
            node.spawn()
        for node in nodes[1:]:
            node.wait_healthy()
        yield Cluster(redis, pg, nodes)
    finally:
        for node in nodes:
            node.stop()
        redis.stop()
        pg.destroy()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("cluster")) as running:
        yield running
