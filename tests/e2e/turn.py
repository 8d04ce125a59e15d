"""coturn, started for real with deploy/turnserver.conf, for journeys that relay media through it."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .harness import ROOT, free_port

TURNSERVER = Path("/usr/bin/turnserver")


@dataclass(frozen=True)
class Turn:
    host: str
    port: int
    tls_port: int
    secret: str
    log: Path

    @property
    def urls(self) -> list[str]:
        return [
            f"turn:{self.host}:{self.port}?transport=udp",
            f"turn:{self.host}:{self.port}?transport=tcp",
            f"turns:{self.host}:{self.tls_port}?transport=tcp",
        ]


def host_address() -> str:
    """This machine's first non-loopback IPv4 address (ICE never uses loopback)."""
    out = subprocess.run(["ip", "-j", "-4", "addr"], capture_output=True, text=True, check=True).stdout
    for link in json.loads(out):
        for info in link.get("addr_info", []):
            if not info["local"].startswith("127."):
                return str(info["local"])
    raise RuntimeError("no non-loopback IPv4 address")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def coturn(workdir: Path, *, listening_ip: str | None = None) -> Iterator[Turn]:
    """coturn on this machine's address with the production config; only the media worker (this same
    address) is an allowed peer, as docker-compose.yml does with MEDIA_WORKER_IP. ``listening_ip`` puts it
    (listening, relaying and the one allowed peer) on another local address instead, e.g. the host side of
    a test network namespace (shiqu_link.py)."""
    if not TURNSERVER.exists():
        message = f"{TURNSERVER} missing (Debian package coturn)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    workdir.mkdir(parents=True, exist_ok=True)
    host = listening_ip or host_address()
    cert, key = workdir / "cert.pem", workdir / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=turn.test",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    port, tls_port = free_port(), free_port()
    relay_low = 30000 + secrets.randbelow(20000)
    secret = secrets.token_urlsafe(32)
    log = workdir / "turnserver.log"
    command = [
        str(TURNSERVER), "-c", str(ROOT / "deploy" / "turnserver.conf"),
        f"--static-auth-secret={secret}", "--realm=turn.test.invalid",
        f"--allowed-peer-ip={host}", f"--listening-ip={host}", f"--relay-ip={host}",
        f"--listening-port={port}", f"--tls-listening-port={tls_port}", f"--cert={cert}", f"--pkey={key}",
        f"--min-port={relay_low}", f"--max-port={relay_low + 200}",
        f"--userdb={workdir / 'turndb'}", f"--pidfile={workdir / 'turnserver.pid'}", "--log-file=stdout",
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        deadline = time.monotonic() + 10
        while not (_accepts(host, port) and _accepts(host, tls_port)):
            assert process.poll() is None, f"turnserver exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"turnserver did not open its listeners:\n{log.read_text()}"
            time.sleep(0.1)
        yield Turn(host=host, port=port, tls_port=tls_port, secret=secret, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
