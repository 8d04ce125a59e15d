"""deploy/turnserver.conf: a lint of the hardening, then the real coturn started with this very file.

The live part speaks STUN/TURN over UDP (RFC 5389/5766) to the server: a Binding answer proves it serves;
an Allocate without credentials must be refused (401); TURN REST credentials minted from the secret given
on the command line, the way live/ice.py mints them, must be accepted; permissions towards private and
reserved peers must be refused (403) while a public peer is allowed. In CI (CI=true) a missing
/usr/bin/turnserver fails; elsewhere it skips.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "deploy" / "turnserver.conf"
TURNSERVER = Path("/usr/bin/turnserver")
IN_CI = os.environ.get("CI") == "true"
MEDIA_WORKER_IP = "10.0.0.5"  # what docker-compose.yml passes as --allowed-peer-ip=${MEDIA_WORKER_IP}

REQUIRED_DENIED = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


# --- the config file ---------------------------------------------------------------------------------------


def parse_conf(text: str) -> list[tuple[str, str | None]]:
    """coturn's format: one option per line, `name` or `name=value`; `#` starts a comment line."""
    options: list[tuple[str, str | None]] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        options.append((name.strip(), value.strip() if sep else None))
    return options


def ip_range(spec: str) -> tuple[Address, Address]:
    """`a-b`, `a` or `net/len` -> first and last address."""
    if "-" in spec:
        first, last = (ipaddress.ip_address(part.strip()) for part in spec.split("-", 1))
        return first, last
    network = ipaddress.ip_network(spec, strict=False)
    return network[0], network[-1]


def covered(network: ipaddress.IPv4Network | ipaddress.IPv6Network, ranges: list[tuple[Address, Address]]) -> bool:
    """True if the union of `ranges` contains all of `network`."""
    spans = sorted(
        (int(first), int(last)) for first, last in ranges if first.version == network.version == last.version
    )
    need = int(network[0])
    end = int(network[-1])
    for first, last in spans:
        if first > need:
            break
        need = max(need, last + 1)
        if need > end:
            return True
    return need > end


@pytest.fixture(scope="module")
def options() -> list[tuple[str, str | None]]:
    return parse_conf(CONF.read_text(encoding="utf-8"))


def values(options: list[tuple[str, str | None]], name: str) -> list[str | None]:
    return [value for key, value in options if key == name]


def test_time_limited_credentials_only(options: list[tuple[str, str | None]]) -> None:
    names = {name for name, _ in options}
    assert values(options, "use-auth-secret") == [None]
    assert "no-auth" not in names
    assert not {"user", "lt-cred-mech", "allow-loopback-peers", "no-tls-verify"} & names
    assert "static-auth-secret" not in names, "the secret comes from the command line, never from this file"
    assert "realm" in names


def test_hardening_flags(options: list[tuple[str, str | None]]) -> None:
    names = {name for name, _ in options}
    for flag in ["fingerprint", "no-cli", "no-multicast-peers", "no-tlsv1", "no-tlsv1_1"]:
        assert flag in names, flag
    assert values(options, "listening-port") == ["3478"]
    assert values(options, "tls-listening-port") == ["443"]
    assert values(options, "cert") and values(options, "pkey")


def test_denied_peer_ranges_cover_private_and_reserved_networks(options: list[tuple[str, str | None]]) -> None:
    ranges = [ip_range(value) for value in values(options, "denied-peer-ip") if value]
    missing = [net for net in REQUIRED_DENIED if not covered(ipaddress.ip_network(net), ranges)]
    assert not missing, f"denied-peer-ip does not cover {missing}"


def test_allowed_peer_ip_is_at_most_single_addresses(options: list[tuple[str, str | None]]) -> None:
    """The exception for the media workers must not reopen a private range."""
    for value in values(options, "allowed-peer-ip"):
        assert value
        first, last = ip_range(value)
        assert first == last, f"allowed-peer-ip={value} opens a range"
    assert re.search(r"^#\s*allowed-peer-ip=", CONF.read_text(encoding="utf-8"), re.M), "placeholder"


def test_lint_catches_a_gap() -> None:
    """Guard: the coverage check is not vacuous."""
    ranges = [ip_range("10.0.0.0-10.255.255.254")]
    assert not covered(ipaddress.ip_network("10.0.0.0/8"), ranges)
    assert covered(ipaddress.ip_network("10.0.0.0/8"), [*ranges, ip_range("10.255.255.255")])


# --- STUN/TURN client (just enough for the checks) ------------------------------------------------------

MAGIC = 0x2112A442
BINDING, ALLOCATE, CREATE_PERMISSION = 0x0001, 0x0003, 0x0008
SUCCESS, ERROR = 0x0100, 0x0110
ATTR_USERNAME, ATTR_MESSAGE_INTEGRITY, ATTR_ERROR_CODE = 0x0006, 0x0008, 0x0009
ATTR_XOR_PEER_ADDRESS, ATTR_REALM, ATTR_NONCE = 0x0012, 0x0014, 0x0015
ATTR_REQUESTED_TRANSPORT, ATTR_XOR_MAPPED_ADDRESS, ATTR_FINGERPRINT = 0x0019, 0x0020, 0x8028


@dataclass
class Response:
    kind: int  # message type
    attrs: dict[int, bytes]

    @property
    def error_code(self) -> int | None:
        value = self.attrs.get(ATTR_ERROR_CODE)
        return None if value is None else (value[2] & 0x07) * 100 + value[3]


def attribute(kind: int, value: bytes) -> bytes:
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)


def xor_address(host: str, port: int) -> bytes:
    packed = ipaddress.IPv4Address(host).packed
    xored = bytes(a ^ b for a, b in zip(packed, struct.pack("!I", MAGIC), strict=True))
    return struct.pack("!BBH", 0, 1, port ^ (MAGIC >> 16)) + xored


def message(kind: int, attrs: list[bytes], key: bytes | None = None) -> tuple[bytes, bytes]:
    txid = secrets.token_bytes(12)
    body = b"".join(attrs)
    if key is not None:  # MESSAGE-INTEGRITY over the message with the length already counting it
        header = struct.pack("!HHI", kind, len(body) + 24, MAGIC) + txid
        mac = hmac.new(key, header + body, hashlib.sha1).digest()
        body += attribute(ATTR_MESSAGE_INTEGRITY, mac)
    return struct.pack("!HHI", kind, len(body), MAGIC) + txid + body, txid


def parse(data: bytes) -> tuple[Response, bytes]:
    kind, length, cookie = struct.unpack("!HHI", data[:8])
    assert cookie == MAGIC
    attrs: dict[int, bytes] = {}
    offset = 20
    while offset < 20 + length:
        atype, alen = struct.unpack("!HH", data[offset : offset + 4])
        attrs.setdefault(atype, data[offset + 4 : offset + 4 + alen])
        offset += 4 + alen + (-alen % 4)
    return Response(kind, attrs), data[8:20]


class TurnClient:
    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(0.3)
        self.server = ("127.0.0.1", port)

    def close(self) -> None:
        self.sock.close()

    def request(self, kind: int, attrs: list[bytes], key: bytes | None = None, timeout: float = 3.0) -> Response:
        packet, txid = message(kind, attrs, key)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # UDP: resend until answered
            self.sock.sendto(packet, self.server)
            with contextlib.suppress(TimeoutError):
                while True:
                    data, _addr = self.sock.recvfrom(4096)
                    response, rtxid = parse(data)
                    if rtxid == txid:
                        return response
        raise TimeoutError(f"no answer to STUN message 0x{kind:04x} from {self.server}")


def rest_credentials(secret: str, ttl: int = 600) -> tuple[str, str]:
    """TURN REST API credentials, as live/ice.py mints them for browsers."""
    username = f"{int(time.time()) + ttl}:deploy-test"
    password = base64.b64encode(hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()).decode()
    return username, password


# --- the real server ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port")


@dataclass
class RunningTurn:
    port: int
    secret: str
    log: Path


@pytest.fixture(scope="module")
def turnserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningTurn]:
    if not TURNSERVER.exists():
        message = f"{TURNSERVER} is not installed (Debian package coturn; ./jinshi test installs it as root)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    workdir = tmp_path_factory.mktemp("turn")
    port, tls_port = free_port(), free_port()
    relay_low = 20000 + secrets.randbelow(20000)
    secret = secrets.token_urlsafe(32)
    log = workdir / "turnserver.log"
    # The file as it is, plus what the compose file adds on the command line (secret, realm, listening
    # address, the media workers' exception) and test-only overrides: free high ports, loopback only,
    # no TLS (no certificate here), and files under the test's folder.
    command = [
        str(TURNSERVER),
        "-c",
        str(CONF),
        f"--static-auth-secret={secret}",
        "--realm=turn.test.invalid",
        f"--allowed-peer-ip={MEDIA_WORKER_IP}",
        f"--listening-port={port}",
        f"--tls-listening-port={tls_port}",
        "--no-tls",
        "--no-dtls",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--min-port={relay_low}",
        f"--max-port={relay_low + 50}",
        f"--userdb={workdir / 'turndb'}",
        f"--pidfile={workdir / 'turnserver.pid'}",
        "--log-file=stdout",
    ]
    with log.open("w") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        client = TurnClient(port)
        try:
            deadline = time.monotonic() + 10
            while True:
                assert process.poll() is None, f"turnserver exited:\n{log.read_text()}"
                try:
                    response = client.request(BINDING, [], timeout=0.5)
                    break
                except TimeoutError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"turnserver did not answer within 10 s:\n{log.read_text()}")
            assert response.kind == BINDING | SUCCESS
            assert ATTR_XOR_MAPPED_ADDRESS in response.attrs
            assert ATTR_FINGERPRINT in response.attrs, "fingerprint is on"
        finally:
            client.close()
        yield RunningTurn(port=port, secret=secret, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_turnserver_listens_on_udp_and_tcp(turnserver: RunningTurn) -> None:
    with socket.create_connection(("127.0.0.1", turnserver.port), timeout=3):
        pass
    # UDP answered in the fixture (a Binding request); the TLS listener is off (--no-tls) in the test.


def test_turnserver_refuses_unauthenticated_and_wrong_credentials(turnserver: RunningTurn) -> None:
    transport = attribute(ATTR_REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
    client = TurnClient(turnserver.port)
    try:
        challenge = client.request(ALLOCATE, [transport])
        assert challenge.kind == ALLOCATE | ERROR and challenge.error_code == 401
        realm = challenge.attrs[ATTR_REALM]
        nonce = challenge.attrs[ATTR_NONCE]
        assert realm == b"turn.test.invalid"
        username, _password = rest_credentials(turnserver.secret)
        wrong_key = hashlib.md5(username.encode() + b":" + realm + b":wrong-password").digest()
        attrs = [
            attribute(ATTR_USERNAME, username.encode()),
            attribute(ATTR_REALM, realm),
            attribute(ATTR_NONCE, nonce),
            transport,
        ]
        refused = client.request(ALLOCATE, attrs, key=wrong_key)
        assert refused.kind == ALLOCATE | ERROR and refused.error_code == 401
    finally:
        client.close()


def test_turnserver_relays_with_rest_credentials_but_never_to_private_peers(turnserver: RunningTurn) -> None:
    transport = attribute(ATTR_REQUESTED_TRANSPORT, bytes([17, 0, 0, 0]))
    client = TurnClient(turnserver.port)
    try:
        challenge = client.request(ALLOCATE, [transport])
        realm, nonce = challenge.attrs[ATTR_REALM], challenge.attrs[ATTR_NONCE]
        username, password = rest_credentials(turnserver.secret)
        # Long-term credential key (RFC 5389 15.4): MD5(username:realm:password); MD5 is the protocol's.
        key = hashlib.md5(f"{username}:".encode() + realm + f":{password}".encode()).digest()
        auth = [
            attribute(ATTR_USERNAME, username.encode()),
            attribute(ATTR_REALM, realm),
            attribute(ATTR_NONCE, nonce),
        ]
        allocated = client.request(ALLOCATE, [*auth, transport], key=key)
        assert allocated.kind == ALLOCATE | SUCCESS, f"error {allocated.error_code}"

        def permission(peer: str) -> Response:
            return client.request(
                CREATE_PERMISSION, [*auth, attribute(ATTR_XOR_PEER_ADDRESS, xor_address(peer, 9))], key=key
            )

        for peer in [
            "10.0.0.6",  # next to the media worker's allowed address
            "10.1.2.3",
            "192.168.1.10",
            "172.20.0.5",
            "100.64.1.1",
            "169.254.169.254",
            "127.0.0.1",
            "0.0.0.1",
            "198.18.0.1",
        ]:
            refused = permission(peer)
            assert refused.kind == CREATE_PERMISSION | ERROR and refused.error_code == 403, (
                f"peer {peer}: {refused.kind:#06x} {refused.error_code}"
            )
        # A public peer, and the one private exception (the media worker), are allowed.
        for peer in ["8.8.8.8", MEDIA_WORKER_IP]:
            allowed = permission(peer)
            assert allowed.kind == CREATE_PERMISSION | SUCCESS, f"peer {peer} refused: {allowed.error_code}"
    finally:
        client.close()
