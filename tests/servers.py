"""Throwaway Redis and PostgreSQL servers for tests, started from the real binaries on free ports.

Never the services on the standard ports (6379, 5432): every server here gets a fresh free port and a
private temporary directory, and is killed at the end of the test session. A missing binary skips the tests
that need it, naming what is missing.

PostgreSQL runs as the ``postgres`` OS user when the tests run as root (initdb refuses root). ``initdb`` runs
once per session into a template directory; every further server is a copy of it (a copy takes ~50 ms,
initdb ~2 s).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

_PG_DIRS = ["/usr/local/bin", *sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports: every socket stays bound until all are chosen, so the kernel cannot hand
    the same port out twice (a cluster node's client and bus ports must differ)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, log: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            said = Path(log).read_text(errors="replace")[-2000:] if log and os.path.exists(log) else ""
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}: {said}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")


# -- Redis ----------------------------------------------------------------------------------------
def _redis_args(binary: str, port: int, directory: str) -> list[str]:
    """A Redis without persistence on 127.0.0.1:``port`` that logs to ``directory``/log."""
    return [
        *(binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"),
        *("--dir", directory, "--protected-mode", "no", "--loglevel", "warning"),
        *("--logfile", os.path.join(directory, "log")),
    ]


class RedisServer:
    """One ``redis-server`` without persistence; ``restart()`` brings it back empty on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hubbub-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(_redis_args(self.binary, self.port, self.dir), stdout=subprocess.DEVNULL)
        _wait_port(self.port, 10, self.proc, os.path.join(self.dir, "log"))
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        """Kill and start again: it comes back empty, as a Redis without persistence does."""
        self.kill()
        self.start()

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisClusterServers:
    """A Redis Cluster of three masters (no replicas), each a ``redis-server --cluster-enabled yes`` on free
    ports (client and bus), joined by ``redis-cli --cluster create``. Started once per session, in about 2 s."""

    MASTERS = 3

    def __init__(self) -> None:
        binary, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if binary is None or cli is None:
            pytest.skip(
                "redis-server and redis-cli are needed for a Redis Cluster (apt-get install redis-server)"
            )
        self.binary, self.cli = binary, cli
        self.ports = free_ports(self.MASTERS)
        self.dir = tempfile.mkdtemp(prefix="hubbub-rediscluster-")
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """Any node seeds the client; the scheme says it is a cluster (engines/redis_link.py)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self, attempts: int = 3) -> RedisClusterServers:
        """Retried on fresh ports: a port chosen free can be taken by another process before Redis binds it."""
        for attempt in range(attempts):
            try:
                return self._start_once()
            except (RuntimeError, subprocess.CalledProcessError):
                self.stop()
                if attempt == attempts - 1:
                    raise
                self.ports = free_ports(self.MASTERS)
                self.dir = tempfile.mkdtemp(prefix="hubbub-rediscluster-")
        raise AssertionError("unreachable")

    def _start_once(self) -> RedisClusterServers:
        bus_ports = free_ports(2 * self.MASTERS)
        bus_ports = [p for p in bus_ports if p not in self.ports][: self.MASTERS]
        for port, bus_port in zip(self.ports, bus_ports, strict=True):
            node_dir = os.path.join(self.dir, str(port))
            os.mkdir(node_dir)
            args = _redis_args(self.binary, port, node_dir)
            args += ["--cluster-enabled", "yes", "--cluster-port", str(bus_port)]
            args += ["--cluster-config-file", os.path.join(node_dir, "nodes.conf")]
            args += ["--cluster-node-timeout", "2000"]
            self.procs.append(subprocess.Popen(args, stdout=subprocess.DEVNULL))
        for port, proc in zip(self.ports, self.procs, strict=True):
            _wait_port(port, 10, proc, os.path.join(self.dir, str(port), "log"))
        subprocess.run(
            [
                *(self.cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports)),
                *("--cluster-replicas", "0", "--cluster-yes"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while not all(self._state_ok(port) for port in self.ports):
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok in 20 s")
            time.sleep(0.05)
        return self

    def _state_ok(self, port: int) -> bool:
        out = subprocess.run(
            [self.cli, "-p", str(port), "cluster", "info"], capture_output=True, check=False
        ).stdout.decode()
        return "cluster_state:ok" in out

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.procs.clear()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- PostgreSQL -----------------------------------------------------------------------------------
def _pg_binary(name: str) -> str:
    for directory in _PG_DIRS:
        path = os.path.join(directory, name)
        if os.access(path, os.X_OK):
            return path
    pytest.skip(f"PostgreSQL's {name} is not installed (looked in {', '.join(_PG_DIRS)})")


def _as_postgres() -> list[str]:
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        pytest.skip("running as root needs runuser to start PostgreSQL as the postgres user")
    return [runuser, "-u", "postgres", "--"]


def _chown_postgres(path: str) -> None:
    if os.geteuid() == 0:
        import pwd

        pw = pwd.getpwnam("postgres")
        for root, dirs, files in os.walk(path):
            for name in [
                root,
                *(os.path.join(root, d) for d in dirs),
                *(os.path.join(root, f) for f in files),
            ]:
                os.lchown(name, pw.pw_uid, pw.pw_gid)


_template: str | None = None


def _template_dir() -> str:
    """A fresh cluster from initdb, made once per session and copied by each server."""
    global _template
    if _template is None:
        if os.geteuid() == 0:
            try:
                import pwd

                pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root needs a 'postgres' OS user to run PostgreSQL")
        root = tempfile.mkdtemp(prefix="hubbub-pgtemplate-")
        _chown_postgres(root)
        data = os.path.join(root, "data")
        subprocess.run(
            [
                *_as_postgres(),
                _pg_binary("initdb"),
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _template = data
    return _template


class PostgresServer:
    """A private PostgreSQL on a free 127.0.0.1 port, trust auth, socket in its own directory."""

    def __init__(self) -> None:
        self.pg_ctl = _pg_binary("pg_ctl")
        template = _template_dir()
        self.root = tempfile.mkdtemp(prefix="hubbub-pg-")
        self.data = os.path.join(self.root, "data")
        shutil.copytree(template, self.data, symlinks=True)
        os.chmod(self.data, 0o700)
        _chown_postgres(self.root)
        self.port = free_port()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            [
                *_as_postgres(),
                *(self.pg_ctl, "-D", self.data, "-l", os.path.join(self.root, "log")),
                *("-w", "-t", "30", "-o", options, "start"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return self

    def stop(self, mode: str = "immediate") -> None:
        subprocess.run(
            [*_as_postgres(), self.pg_ctl, "-D", self.data, "-m", mode, "-w", "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its SQLAlchemy-free URL (``postgresql://...``)."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def psql(self, sql: str, database: str = "postgres") -> str:
        psql = _pg_binary("psql")
        out = subprocess.run(
            [
                *(psql, "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-d", database),
                *("-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql),
            ],
            check=True,
            capture_output=True,
        )
        return out.stdout.decode()


class PostgresReplica(PostgresServer):
    """A hot-standby streaming replica of ``primary``: ``pg_basebackup -R -X stream`` of it into a new data
    directory, started on its own free port. ``caught_up`` waits until it has replayed what the primary had
    written; ``pause``/``resume`` stop and restart its replay, a replica that lags as long as a test wants."""

    def __init__(self, primary: PostgresServer) -> None:
        self.pg_ctl = _pg_binary("pg_ctl")
        self.primary = primary
        self.root = tempfile.mkdtemp(prefix="hubbub-pgreplica-")
        _chown_postgres(self.root)
        self.data = os.path.join(self.root, "data")
        subprocess.run(
            [
                *_as_postgres(),
                *(_pg_binary("pg_basebackup"), "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres"),
                *("-D", self.data, "-R", "-X", "stream", "--no-sync", "-c", "fast"),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.port = free_port()

    def caught_up(self, timeout: float = 20) -> None:
        target = self.primary.psql("SELECT pg_current_wal_lsn()").strip()
        deadline = time.monotonic() + timeout
        while self.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn").strip() != "t":
            if time.monotonic() > deadline:
                raise RuntimeError(f"the replica did not replay up to {target} in {timeout} s")
            time.sleep(0.02)

    def pause(self) -> None:
        self.psql("SELECT pg_wal_replay_pause()")

    def resume(self) -> None:
        self.psql("SELECT pg_wal_replay_resume()")


def cleanup_template() -> None:
    global _template
    if _template is not None:
        shutil.rmtree(str(Path(_template).parent), ignore_errors=True)
        _template = None


# -- fixtures (imported by the conftest of each test folder that needs them) ------------------------
_shared: dict[str, object] = {}
_users: dict[str, int] = {}


def acquire_redis() -> RedisServer:
    server = _shared.get("redis")
    if server is None:
        server = _shared["redis"] = RedisServer().start()
    _users["redis"] = _users.get("redis", 0) + 1
    assert isinstance(server, RedisServer)
    return server


def acquire_redis_cluster() -> RedisClusterServers:
    server = _shared.get("redis-cluster")
    if server is None:
        server = _shared["redis-cluster"] = RedisClusterServers().start()
    _users["redis-cluster"] = _users.get("redis-cluster", 0) + 1
    assert isinstance(server, RedisClusterServers)
    return server


def acquire_postgres() -> PostgresServer:
    server = _shared.get("pg")
    if server is None:
        server = _shared["pg"] = PostgresServer().start()
    _users["pg"] = _users.get("pg", 0) + 1
    assert isinstance(server, PostgresServer)
    return server


def acquire_replica() -> tuple[PostgresServer, PostgresReplica]:
    """A throwaway primary of its own (never the shared server) and its streaming replica."""
    pair = _shared.get("pg-replica")
    if pair is None:
        primary = PostgresServer().start()
        pair = _shared["pg-replica"] = (primary, PostgresReplica(primary).start())
    _users["pg-replica"] = _users.get("pg-replica", 0) + 1
    assert isinstance(pair, tuple)
    return pair


def release(kind: str) -> None:
    """Stop a shared server once its last session fixture is done with it."""
    _users[kind] -= 1
    if _users[kind] == 0:
        server = _shared.pop(kind)
        if isinstance(server, RedisServer | RedisClusterServers):
            server.stop()
        elif isinstance(server, PostgresServer):
            server.destroy()
        elif isinstance(server, tuple):
            for pg in reversed(server):
                pg.destroy()
        if "pg" not in _shared and "pg-replica" not in _shared:
            cleanup_template()


# -- a cuttable TCP proxy -------------------------------------------------------------------------
class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server; ``cut()`` drops every connection and refuses new ones,
    which is how a database that went away looks from the client, without stopping a shared server."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: object | None = None
        self._writers: set[object] = set()

    async def start(self) -> TcpProxy:
        import asyncio

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
            except OSError:
                writer.close()
                return
            self._writers.update((writer, up_writer))
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            self._writers.discard(writer)
            self._writers.discard(up_writer)

        self._server = await asyncio.start_server(handle, "127.0.0.1", self.port)
        return self

    async def cut(self) -> None:
        import asyncio

        server = self._server
        if isinstance(server, asyncio.Server):
            server.close()
        for writer in list(self._writers):
            if isinstance(writer, asyncio.StreamWriter):
                transport = writer.transport
                transport.abort()
        self._writers.clear()
        self._server = None
        await asyncio.sleep(0.05)
