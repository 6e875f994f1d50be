"""A real coturn (``turnserver``, Debian package ``coturn``) on loopback for the call tests, and a minimal TURN
client (RFC 5766 Allocate with long-term credentials) that checks what coturn thinks of a credential.

coturn runs with ``use-auth-secret``: it accepts a username ``<expiry>:<user>`` whose password is the
HMAC-SHA1 of the username with the shared secret (services/calls/ice.py), until the expiry passes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import random
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.servers import free_port

MAGIC = 0x2112A442
ALLOCATE = 0x0003
ALLOCATE_OK = 0x0103
ALLOCATE_ERROR = 0x0113
BINDING = 0x0001
ATTR_USERNAME, ATTR_MI, ATTR_ERROR = 0x0006, 0x0008, 0x0009
ATTR_REALM, ATTR_NONCE, ATTR_TRANSPORT = 0x0014, 0x0015, 0x0019
REALM = "hubbub.test"


class TurnServer:
    def __init__(self, secret: str | None = None) -> None:
        binary = shutil.which("turnserver")
        if binary is None:
            pytest.skip("coturn is not installed (apt-get install coturn)")
        self.binary = binary
        self.secret = secret or secrets.token_hex(16)
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="hubbub-turn-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"turn:127.0.0.1:{self.port}?transport=udp"

    def start(self) -> TurnServer:
        low = random.randrange(40000, 60000, 200)
        args = [
            self.binary,
            "-n",  # no configuration file: everything is here
            *("--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1", "--listening-port", str(self.port)),
            *("--min-port", str(low), "--max-port", str(low + 199)),
            "--use-auth-secret",
            *("--static-auth-secret", self.secret, "--realm", REALM),
            # Both browsers are on this machine: their relayed peers are loopback addresses.
            "--allow-loopback-peers",
            *("--no-tls", "--no-dtls", "--no-cli", "--fingerprint"),
            *("--db", str(self.dir / "turndb"), "--pidfile", str(self.dir / "turn.pid")),
            *("--log-file", str(self.dir / "turn.log"), "--no-stdout-log", "--simple-log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"turnserver exited: {self.log()[-2000:]}")
            with contextlib.suppress(OSError, TimeoutError):
                if _exchange(self.port, _message(BINDING, secrets.token_bytes(12), []), 0.2)[0] == 0x0101:
                    return self
            time.sleep(0.05)
        raise RuntimeError("turnserver did not answer")

    def log(self) -> str:
        path = self.dir / "turn.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def allocate(self, username: str, password: str) -> int:
        """Ask for a relay with these credentials: 0 when granted, else the STUN error code (401: refused)."""
        transport = [(ATTR_TRANSPORT, bytes([17, 0, 0, 0]))]
        # One socket for both requests: coturn binds the nonce to the client's address.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3.0)
            kind, attrs = _exchange(
                self.port, _message(ALLOCATE, secrets.token_bytes(12), transport), sock=sock
            )
            if kind != ALLOCATE_ERROR or _error(attrs) != 401:
                raise AssertionError(f"an unauthenticated Allocate should be challenged, got {kind:#x}")
            realm, nonce = attrs[ATTR_REALM], attrs[ATTR_NONCE]
            key = hashlib.md5(f"{username}:{realm.decode()}:{password}".encode()).digest()
            signed = [
                *transport,
                (ATTR_USERNAME, username.encode()),
                (ATTR_REALM, realm),
                (ATTR_NONCE, nonce),
            ]
            request = _message(ALLOCATE, secrets.token_bytes(12), signed, key)
            kind, attrs = _exchange(self.port, request, sock=sock)
        return 0 if kind == ALLOCATE_OK else _error(attrs)


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def _message(kind: int, tid: bytes, attrs: list[tuple[int, bytes]], key: bytes | None = None) -> bytes:
    body = b"".join(_attr(k, v) for k, v in attrs)
    if key is None:
        return struct.pack("!HHI", kind, len(body), MAGIC) + tid + body
    # MESSAGE-INTEGRITY covers the message with its length already counting the integrity attribute.
    head = struct.pack("!HHI", kind, len(body) + 24, MAGIC) + tid
    mac = hmac.new(key, head + body, hashlib.sha1).digest()
    return head + body + _attr(ATTR_MI, mac)


def _exchange(
    port: int, data: bytes, timeout: float = 3.0, sock: socket.socket | None = None
) -> tuple[int, dict[int, bytes]]:
    with contextlib.ExitStack() as stack:
        if sock is None:
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            sock.settimeout(timeout)
        sock.sendto(data, ("127.0.0.1", port))
        reply, _ = sock.recvfrom(4096)
    kind, length = struct.unpack("!HH", reply[:4])
    attrs: dict[int, bytes] = {}
    at = 20
    while at < 20 + length:
        akind, alen = struct.unpack("!HH", reply[at : at + 4])
        attrs.setdefault(akind, reply[at + 4 : at + 4 + alen])
        at += 4 + alen + (-alen % 4)
    return kind, attrs


def _error(attrs: dict[int, bytes]) -> int:
    value = attrs.get(ATTR_ERROR, b"\0\0\0\0")
    return (value[2] & 0x07) * 100 + value[3]
