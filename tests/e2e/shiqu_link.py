"""A Shiqu school's link to this machine, for real: a network namespace whose only way out is a slow,
lossy, long link to the platform.

    with shiqu_link(P1) as link:          # P1: 1 Mbps down, 512 kbps up, 300 ms RTT, 3 % loss
        link.exec_argv(["/usr/bin/chromium", ...])    # a classroom browser behind that link
        link.cut(10)                      # the link goes dark for 10 s

How the link is built (this kernel has no ``netem``, see PITFALLS.md):

* **Topology.** A namespace ``shiqu-<pid>-<n>`` and a pair of TUN devices: ``shq<n>h`` on this machine
  (``10.213.X.Y+1/30``) and ``eth0`` inside the namespace (``10.213.X.Y+2/30``, default route via the
  host side). The TUN pair plays the part of a veth pair, with a userspace relay (``relay`` below, its own
  process) as the wire between them. Addresses come from a /30 that exists only on these two devices.
* **Delay.** The relay holds every packet for RTT/2 before writing it to the other device (a FIFO per
  direction, constant delay, no jitter). ``ping()`` measures the RTT that results (ICMP echo from inside
  the namespace; there is no ``ping`` binary on these machines): P1 gave 301-307 ms for 300 ms.
  Packets pass the rate limiter before the delay, so the delay does not change the rate.
* **Rate.** ``tbf`` on the egress of each device: down = the host-side device (what the platform sends),
  up = ``eth0`` in the namespace (what the classroom sends). Each queue holds ``Profile.queue_ms`` (250 by
  default) of traffic at the link rate, then drops: a school router's buffer.
* **Loss.** nftables in the namespace, ``numgen random`` on the ``netdev`` ingress and egress hooks of
  ``eth0``: the sender never notices (no EPERM as with an ``output``-hook drop), as on a real link. Loss
  applies to every packet, media (UDP) *and* signalling/page loads (TCP) and ICMP, because a real link
  loses everything; the tests' pass/fail verdicts are about media only. ``Profile.loss_udp_only`` limits
  loss to UDP when one wants signalling kept clean.
* **Cut.** ``cut(seconds)`` / ``down()`` / ``up()`` make the relay drop everything, both ways, silently:
  the classroom's own interface stays up, as when a school's upstream link goes dark.
* **UDP blocked.** ``Profile.udp_blocked`` drops every UDP packet on ``eth0`` (both hooks, silently).
* **Guard.** An ``output`` rule in the namespace drops anything addressed elsewhere than the host side of
  the /30 (Chromium's DNS and mDNS, the server's other ICE candidates): the namespace can reach nothing
  but that one address.

Cleanup: everything lives in the namespace and in the relay process. The TUN devices vanish with the
relay (it exits when its stdin closes, i.e. when the test process dies, or when its devices go); the
qdiscs and nftables tables vanish with the devices and the namespace. On exit the context manager stops
the relay, ends what still runs inside the namespace (processes this run started there) and deletes
the namespace. At start, namespaces ``shiqu-<pid>-*`` whose ``<pid>`` no longer runs are left-overs of a
crashed run and are removed the same way.

Run as a script (from the repository root, as root):

    python -m tests.e2e.shiqu_link check P2        # build the P2 link, print the RTT, loss and rates measured
    python -m tests.e2e.shiqu_link measure P2      # a real lesson over P2: print the viewer's figures
    python -m tests.e2e.shiqu_link measure P2 --layer light   # the same on the light layer

(``measure`` needs Chromium and Playwright; P2 has no pass/fail test, the product does not adapt quality
per viewer yet.) The subcommands ``relay``, ``ping``, ``udp-send`` and ``udp-recv`` are used internally.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import ctypes
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NETNS_PREFIX = "shiqu-"
HOST_DEV_PREFIX = "shq"
NS_DEV = "eth0"
SUBNET_PREFIX = "10.213"
TOOLS = ("ip", "nft", "tc")


@dataclass(frozen=True)
class Profile:
    """How a school's link behaves. Rates in kbit/s (None: unlimited), RTT in ms, loss in % per direction."""

    name: str
    down_kbit: int | None = None
    up_kbit: int | None = None
    rtt_ms: float = 0.0
    loss_pct: float = 0.0
    udp_blocked: bool = False
    loss_udp_only: bool = False
    queue_ms: int = 250  # tbf queue at each end, in ms of traffic at the link rate (a school router's buffer)


# The profiles of the issue "live lessons over real Shiqu links".
P1 = Profile("P1", down_kbit=1000, up_kbit=512, rtt_ms=300, loss_pct=3)
P2 = Profile("P2", down_kbit=300, up_kbit=300, rtt_ms=600, loss_pct=8)
# P3 is P1 with a 10 s cut (``ShiquLink.cut``). UDP blocked: a school firewall that lets only TCP out, on a
# link otherwise like P1 without its random loss.
UDP_BLOCKED = Profile("udp-blocked", down_kbit=1000, up_kbit=512, rtt_ms=300, udp_blocked=True)
PROFILES = {p.name: p for p in (P1, P2, UDP_BLOCKED)}


class LinkUnavailable(RuntimeError):
    """A tool or permission this machine lacks (the caller decides between skip and fail)."""


def missing_requirements() -> str | None:
    """Why a link cannot be built here, or None."""
    if os.geteuid() != 0:
        return "building a network namespace needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (Debian packages iproute2, nftables)"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun missing (TUN devices carry the link)"
    return None


def _run(argv: list[str], *, input_text: str | None = None, check: bool = True, timeout: float = 20) -> str:
    result = subprocess.run(argv, input=input_text, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _netns_names() -> list[str]:
    return [line.split()[0] for line in _run(["ip", "netns", "list"]).splitlines() if line.strip()]


def _remove_netns(name: str) -> None:
    """End the processes still inside namespace ``name`` (all started by this module's users) and delete it."""
    for _ in range(2):
        pids = [int(p) for p in _run(["ip", "netns", "pids", name], check=False).split() if p.isdigit()]
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while any(_pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    _run(["ip", "netns", "delete", name], check=False)


def _stale(name: str) -> bool:
    """``shiqu-<pid>-...`` whose ``<pid>`` no longer runs."""
    owner = name[len(NETNS_PREFIX) :].split("-", 1)[0] if name.startswith(NETNS_PREFIX) else ""
    return owner.isdigit() and not _pid_alive(int(owner))


def remove_stale_links() -> list[str]:
    """Delete namespaces ``shiqu-<pid>-*`` (and their work folders) left by a run whose process is gone.
    Returns the namespaces' names."""
    removed = []
    for name in _netns_names():
        if _stale(name):
            _remove_netns(name)
            removed.append(name)
    for folder in Path(tempfile.gettempdir()).glob(f"{NETNS_PREFIX}*"):
        if folder.is_dir() and _stale(folder.name):
            shutil.rmtree(folder, ignore_errors=True)
    return removed


def _host_addresses() -> set[str]:
    out = _run(["ip", "-j", "-4", "addr"])
    return {info["local"] for link in json.loads(out) for info in link.get("addr_info", [])}


def _host_links() -> set[str]:
    return {link["ifname"] for link in json.loads(_run(["ip", "-j", "link"]))}


def _pick_subnet_and_device() -> tuple[str, str, str]:
    """A free /30 under 10.213.0.0/16 and a free host device name: (host address, namespace address, device)."""
    used_addresses = _host_addresses()
    used_links = _host_links()
    for index in range(16384):
        third, fourth = divmod(index * 4, 256)
        host, guest = f"{SUBNET_PREFIX}.{third}.{fourth + 1}", f"{SUBNET_PREFIX}.{third}.{fourth + 2}"
        device = f"{HOST_DEV_PREFIX}{index}h"
        if host not in used_addresses and device not in used_links:
            return host, guest, device
    raise LinkUnavailable("no free /30 left under 10.213.0.0/16")


def _tbf(kbit: int, queue_ms: int) -> list[str]:
    rate_bytes = kbit * 1000 / 8
    burst = 3000  # two full packets: no room for a burst above the line rate
    limit = int(rate_bytes * queue_ms / 1000) + burst
    return ["root", "tbf", "rate", f"{kbit}kbit", "burst", str(burst), "limit", str(limit)]


def _nft_rules(profile: Profile, host_ip: str) -> str:
    impair = []
    if profile.udp_blocked:
        impair.append("meta l4proto udp counter drop")
    if profile.loss_pct > 0:
        scope = "meta l4proto udp " if profile.loss_udp_only else ""
        impair.append(f"{scope}numgen random mod 10000 < {round(profile.loss_pct * 100)} counter drop")
    body = "\n    ".join(["counter", *impair])
    return f"""
table netdev shiqu_link {{
  chain down {{
    type filter hook ingress device "{NS_DEV}" priority 0; policy accept;
    {body}
  }}
  chain up {{
    type filter hook egress device "{NS_DEV}" priority 0; policy accept;
    {body}
  }}
}}
table inet shiqu_guard {{
  chain out {{
    type filter hook output priority 0; policy accept;
    oifname "lo" accept
    ip daddr {host_ip} accept
    counter drop
  }}
}}
"""


@dataclass
class PingStats:
    sent: int
    rtts_ms: list[float]

    @property
    def received(self) -> int:
        return len(self.rtts_ms)

    @property
    def loss_pct(self) -> float:
        return 100.0 * (self.sent - self.received) / self.sent if self.sent else 0.0

    @property
    def median_ms(self) -> float:
        return statistics.median(self.rtts_ms) if self.rtts_ms else float("nan")

    def __str__(self) -> str:
        if not self.rtts_ms:
            return f"ping: {self.sent} sent, none answered"
        return (
            f"ping: {self.received}/{self.sent} answered ({self.loss_pct:.1f} % lost), RTT min/median/max "
            f"{min(self.rtts_ms):.1f}/{self.median_ms:.1f}/{max(self.rtts_ms):.1f} ms"
        )


@dataclass
class RateStats:
    direction: str
    packets: int
    ip_bytes: int
    seconds: float

    @property
    def kbit(self) -> float:
        return self.ip_bytes * 8 / 1000 / self.seconds if self.seconds > 0 else 0.0

    def __str__(self) -> str:
        return f"{self.direction}: {self.kbit:.0f} kbit/s delivered ({self.packets} packets in {self.seconds:.2f} s)"


@dataclass
class ShiquLink:
    """A running link. ``host_ip`` is this machine's end, ``ns_ip`` the classroom's."""

    profile: Profile
    netns: str
    host_ip: str
    ns_ip: str
    host_dev: str
    relay: subprocess.Popen[str]
    relay_log: Path
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def exec_argv(self, argv: list[str]) -> list[str]:
        """``argv`` to run inside the classroom's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    # --- link state ----------------------------------------------------------------------------------

    def _relay_command(self, command: str) -> dict[str, Any]:
        with self._lock:
            assert self.relay.stdin is not None and self.relay.stdout is not None
            self.relay.stdin.write(command + "\n")
            self.relay.stdin.flush()
            line = _readline(self.relay.stdout, timeout=5)
        if not line:
            raise RuntimeError(f"the link relay did not answer {command!r}:\n{self.relay_log.read_text()}")
        return dict(json.loads(line))

    def down(self) -> None:
        """The link goes dark, both ways (packets vanish; nothing tells either end)."""
        self._relay_command("down")

    def up(self) -> None:
        self._relay_command("up")

    def cut(self, seconds: float) -> None:
        """Link down for ``seconds``, then up again (blocks)."""
        self.down()
        try:
            time.sleep(seconds)
        finally:
            self.up()

    def relay_stats(self) -> dict[str, Any]:
        """Packets the relay carried and dropped, per direction."""
        return self._relay_command("stats")

    def counters(self) -> dict[str, dict[str, int]]:
        """nftables counters in the namespace: per direction ``seen`` and ``dropped`` packets (loss and UDP
        blocking), and ``guard`` (packets the namespace addressed elsewhere than the host side)."""
        out = _run(["ip", "netns", "exec", self.netns, "nft", "-j", "list", "ruleset"])
        counts: dict[str, list[int]] = collections.defaultdict(list)
        for item in json.loads(out)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            for expr in rule["expr"]:
                if "counter" in expr:
                    counts[rule["chain"]].append(int(expr["counter"]["packets"]))
        result = {}
        for chain in ("down", "up"):
            seen, *drops = counts.get(chain, [0])
            result[chain] = {"seen": seen, "dropped": sum(drops)}
        result["guard"] = {"dropped": sum(counts.get("out", []))}
        return result

    # --- measuring the link itself -------------------------------------------------------------------

    def ping(self, count: int = 40, interval: float = 0.05, timeout: float = 5.0) -> PingStats:
        """ICMP echo from inside the namespace to the host side, ``count`` requests ``interval`` s apart."""
        out = _run(
            self.exec_argv(
                [PYTHON, "-m", "tests.e2e.shiqu_link", "ping", self.host_ip, str(count), str(interval), str(timeout)]
            ),
            timeout=count * interval + timeout + 30,
        )
        data = json.loads(out)
        return PingStats(sent=data["sent"], rtts_ms=data["rtts_ms"])

    def udp_rate(self, direction: str, *, offered_kbit: float, seconds: float = 3.0) -> RateStats:
        """Send UDP at ``offered_kbit`` for ``seconds`` across the link (``down``: host to classroom; ``up``:
        classroom to host) and measure what arrives (IP bytes per second between first and last arrival)."""
        port = _free_udp_port(self.host_ip) if direction == "up" else 40000 + os.getpid() % 20000
        receiver_ip, sender_ip = (self.ns_ip, self.host_ip) if direction == "down" else (self.host_ip, self.ns_ip)
        recv_argv = [PYTHON, "-m", "tests.e2e.shiqu_link", "udp-recv", receiver_ip, str(port), str(seconds + 10)]
        send_argv = [
            PYTHON, "-m", "tests.e2e.shiqu_link", "udp-send",
            sender_ip, receiver_ip, str(port), str(offered_kbit), str(seconds),
        ]  # fmt: skip
        if direction == "down":
            recv_argv = self.exec_argv(recv_argv)
        else:
            send_argv = self.exec_argv(send_argv)
        with subprocess.Popen(recv_argv, cwd=ROOT, stdout=subprocess.PIPE, text=True) as receiver:
            assert receiver.stdout is not None
            if _readline(receiver.stdout, timeout=20).strip() != "ready":
                receiver.kill()
                raise RuntimeError("the UDP receiver did not start")
            _run(send_argv, timeout=seconds + 30)
            out, _ = receiver.communicate(timeout=seconds + 30)
        data = json.loads(out)
        return RateStats(direction, data["packets"], data["ip_bytes"], data["seconds"])


def _readline(stream: IO[str], *, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    return stream.readline() if ready else ""


def _free_udp_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def shiqu_link(profile: Profile) -> Iterator[ShiquLink]:
    """Build the link for ``profile``; remove all of it on exit, whatever happened."""
    reason = missing_requirements()
    if reason:
        raise LinkUnavailable(reason)
    remove_stale_links()
    host_ip, ns_ip, host_dev = _pick_subnet_and_device()
    netns = f"{NETNS_PREFIX}{os.getpid()}-{host_dev[len(HOST_DEV_PREFIX) : -1]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{netns}-"))
    relay: subprocess.Popen[str] | None = None
    _run(["ip", "netns", "add", netns])
    try:
        ns = ["ip", "-n", netns]
        _run([*ns, "link", "set", "lo", "up"])
        # No IPv6 inside: the link is an IPv4 school network, and nothing should leak link-local chatter.
        _run(["ip", "netns", "exec", netns, "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6"])
        relay_log = workdir / "relay.log"
        ns_dev_tmp = f"{host_dev[:-1]}n"
        with relay_log.open("w") as log:
            relay = subprocess.Popen(
                [
                    PYTHON, "-m", "tests.e2e.shiqu_link", "relay",
                    netns, host_dev, ns_dev_tmp, str(profile.rtt_ms / 2),
                ],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )  # fmt: skip
        assert relay.stdout is not None
        if _readline(relay.stdout, timeout=15).strip() != "ready":
            raise RuntimeError(f"the link relay did not start:\n{relay_log.read_text()}")

        ipv6 = Path(f"/proc/sys/net/ipv6/conf/{host_dev}/disable_ipv6")
        if ipv6.exists():
            ipv6.write_text("1")
        _run(["ip", "addr", "add", f"{host_ip}/30", "dev", host_dev])
        _run(["ip", "link", "set", host_dev, "up"])
        _run([*ns, "link", "set", ns_dev_tmp, "name", NS_DEV])
        _run([*ns, "addr", "add", f"{ns_ip}/30", "dev", NS_DEV])
        _run([*ns, "link", "set", NS_DEV, "up"])
        _run([*ns, "route", "add", "default", "via", host_ip, "dev", NS_DEV])
        if profile.down_kbit:
            _run(["tc", "qdisc", "replace", "dev", host_dev, *_tbf(profile.down_kbit, profile.queue_ms)])
        if profile.up_kbit:
            _run(["tc", "-n", netns, "qdisc", "replace", "dev", NS_DEV, *_tbf(profile.up_kbit, profile.queue_ms)])
        _run(["ip", "netns", "exec", netns, "nft", "-f", "-"], input_text=_nft_rules(profile, host_ip))
        yield ShiquLink(
            profile=profile,
            netns=netns,
            host_ip=host_ip,
            ns_ip=ns_ip,
            host_dev=host_dev,
            relay=relay,
            relay_log=relay_log,
        )
    finally:
        if relay is not None:
            if relay.stdin is not None:
                with contextlib.suppress(OSError):
                    relay.stdin.close()
            try:
                relay.wait(timeout=5)
            except subprocess.TimeoutExpired:
                relay.kill()
                relay.wait(timeout=5)
            if relay.stdout is not None:
                relay.stdout.close()
        _remove_netns(netns)
        if host_dev in _host_links():
            _run(["ip", "link", "delete", host_dev], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


# --- the relay: the wire between the two TUN devices, with the delay ------------------------------------

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MAX_QUEUED = 20000  # packets per direction (tbf in front already bounds it near rate x delay)


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _enter_netns(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


class _Direction:
    """Packets read from ``src`` are written to ``dst`` ``delay`` seconds later, in order."""

    def __init__(self, loop: asyncio.AbstractEventLoop, src: int, dst: int, delay: float, stop: asyncio.Event):
        self.loop, self.src, self.dst, self.delay, self.stop = loop, src, dst, delay, stop
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.timer: asyncio.TimerHandle | None = None
        self.down = False
        self.counts = {"carried": 0, "dropped_cut": 0, "dropped_overflow": 0, "write_errors": 0}
        loop.add_reader(src, self.readable)

    def readable(self) -> None:
        for _ in range(256):
            try:
                packet = os.read(self.src, 65536)
            except BlockingIOError:
                break
            except OSError:  # the device is gone (namespace deleted): nothing left to relay
                self.stop.set()
                return
            if self.down:
                self.counts["dropped_cut"] += 1
            elif len(self.queue) >= MAX_QUEUED:
                self.counts["dropped_overflow"] += 1
            else:
                self.queue.append((self.loop.time() + self.delay, packet))
        self.arm()

    def arm(self) -> None:
        if self.timer is None and self.queue:
            self.timer = self.loop.call_at(self.queue[0][0], self.flush)

    def flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        while self.queue and self.queue[0][0] <= now + 0.0005:
            _, packet = self.queue.popleft()
            try:
                os.write(self.dst, packet)
                self.counts["carried"] += 1
            except OSError:
                self.counts["write_errors"] += 1
        self.arm()

    def set_down(self, down: bool) -> None:
        self.down = down
        if down:
            self.counts["dropped_cut"] += len(self.queue)
            self.queue.clear()


async def _relay(netns: str, host_dev: str, ns_dev: str, delay_ms: float) -> None:
    host_fd = _open_tun(host_dev)
    _enter_netns(netns)
    ns_fd = _open_tun(ns_dev)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    delay = delay_ms / 1000
    down = _Direction(loop, host_fd, ns_fd, delay, stop)
    up = _Direction(loop, ns_fd, host_fd, delay, stop)
    buffer = bytearray()

    def command() -> None:
        data = os.read(0, 4096)
        if not data:  # the controlling process is gone: so is the link
            stop.set()
            return
        buffer.extend(data)
        while b"\n" in buffer:
            line, _, rest = bytes(buffer).partition(b"\n")
            buffer[:] = rest
            word = line.decode().strip()
            if word in ("down", "up"):
                down.set_down(word == "down")
                up.set_down(word == "down")
            reply = {"ok": True, "down": down.counts, "up": up.counts, "link_down": down.down}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()

    loop.add_reader(0, command)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await stop.wait()


# --- probes run inside or outside the namespace -----------------------------------------------------------


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def _ping(target: str, count: int, interval: float, timeout: float) -> dict[str, Any]:
    ident = os.getpid() & 0xFFFF
    sent_at: dict[int, float] = {}
    rtts: list[float] = []
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.setblocking(False)
        next_send = time.monotonic()
        seq = 0
        deadline = next_send + count * interval + timeout
        while time.monotonic() < deadline and (seq < count or len(rtts) < len(sent_at)):
            now = time.monotonic()
            if seq < count and now >= next_send:
                payload = struct.pack("!d", now) + bytes(48)
                header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
                packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, seq) + payload
                sock.sendto(packet, (target, 0))
                sent_at[seq] = now
                seq += 1
                next_send += interval
            wait = max(0.0, min(next_send - time.monotonic(), 0.05)) if seq < count else 0.05
            ready, _, _ = select.select([sock], [], [], wait)
            if not ready:
                continue
            while True:
                try:
                    data = sock.recv(2048)
                except BlockingIOError:
                    break
                offset = (data[0] & 0x0F) * 4
                kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[offset : offset + 8])
                if kind == 0 and rid == ident and rseq in sent_at:
                    rtts.append((time.monotonic() - sent_at[rseq]) * 1000)
    return {"sent": count, "rtts_ms": rtts}


def _udp_send(source: str, target: str, port: int, kbit: float, seconds: float) -> None:
    payload = bytes(972)  # 1000 IP bytes per packet
    count = max(1, int(kbit * 1000 / 8 / 1000 * seconds))
    gap = seconds / count
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        start = time.monotonic()
        for index in range(count):
            delay = start + index * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with contextlib.suppress(OSError):
                sock.sendto(payload, (target, port))


def _udp_recv(host: str, port: int, limit: float) -> dict[str, Any]:
    packets = ip_bytes = 0
    first = last = 0.0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, port))
        print("ready", flush=True)
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 2.0 if packets else 0.5)
            if not ready:
                if packets:
                    break  # 2 s of silence after traffic: the sender is done and the queues are empty
                continue
            data = sock.recv(65536)
            now = time.monotonic()
            if not packets:
                first = now
            packets, ip_bytes, last = packets + 1, ip_bytes + len(data) + 28, now
    # The first packet opens the interval: count the bytes that arrived after it.
    seconds = last - first
    return {"packets": packets, "ip_bytes": ip_bytes - (ip_bytes // packets if packets else 0), "seconds": seconds}


def check(profile: Profile) -> None:
    """Build ``profile``'s link and print what it measures (RTT, loss, rate each way)."""
    with shiqu_link(profile) as link:
        print(f"{profile}: namespace {link.netns}, {link.ns_ip} -> {link.host_ip}")
        print(link.ping(count=100, interval=0.02))
        for direction, kbit in (("down", profile.down_kbit), ("up", profile.up_kbit)):
            print(link.udp_rate(direction, offered_kbit=2 * (kbit or 5000)))
        print("nft counters:", link.counters())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.shiqu_link", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("check", "measure"):
        p = sub.add_parser(name)
        p.add_argument("profile", choices=sorted(PROFILES))
        if name == "measure":
            p.add_argument("--seconds", type=float, default=30.0)
            p.add_argument("--layer", choices=("standard", "light"), default="standard")
    p = sub.add_parser("relay")
    p.add_argument("netns")
    p.add_argument("host_dev")
    p.add_argument("ns_dev")
    p.add_argument("delay_ms", type=float)
    p = sub.add_parser("ping")
    p.add_argument("target")
    p.add_argument("count", type=int)
    p.add_argument("interval", type=float)
    p.add_argument("timeout", type=float)
    p = sub.add_parser("udp-send")
    p.add_argument("source")
    p.add_argument("target")
    p.add_argument("port", type=int)
    p.add_argument("kbit", type=float)
    p.add_argument("seconds", type=float)
    p = sub.add_parser("udp-recv")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("limit", type=float)
    args = parser.parse_args(argv)

    if args.command == "relay":
        asyncio.run(_relay(args.netns, args.host_dev, args.ns_dev, args.delay_ms))
    elif args.command == "ping":
        print(json.dumps(_ping(args.target, args.count, args.interval, args.timeout)))
    elif args.command == "udp-send":
        _udp_send(args.source, args.target, args.port, args.kbit, args.seconds)
    elif args.command == "udp-recv":
        print(json.dumps(_udp_recv(args.host, args.port, args.limit)))
    elif args.command == "check":
        check(PROFILES[args.profile])
    elif args.command == "measure":
        from .test_shiqu_links import measure_profile  # Playwright and the platform: only when asked

        measure_profile(PROFILES[args.profile], seconds=args.seconds, layer=args.layer)


if __name__ == "__main__":
    main()
