"""Fan-out benchmark of the lesson media engine: shared per-layer encoders vs a naive relay.

One 640x360 lesson is published from the real clip (Big Buck Bunny) by an
aiortc teacher in its own process; N viewers (aiortc clients in other
processes) watch it. The media hub runs alone in its own process, and only
that process is measured (CPU seconds from /proc/<pid>/stat, RSS from
/proc/<pid>/status).

Two hubs, same harness, same viewers:

* ``shared``: this engine (``live.media.LessonHub``) with its product
  configuration: STANDARD and LIGHT layers, one Opus encode, recording on.
  Every viewer here watches STANDARD.
* ``naive``: aiortc's ``MediaRelay`` handing decoded frames to every
  viewer's sender, which encodes VP8 and Opus per viewer.

Viewers do not decode: their RTP path is cut down to counting frames (the
marker bit) and spotting VP8 keyframes, so a 2-core machine can hold 64 of
them next to the hub. Reported per (hub, N): CPU seconds per 1,000 delivered
viewer-frames, cores used, RSS, share of the expected frames delivered, and
join-to-first-frame p50 for viewers whose offers carry raw IP candidates and
for viewers whose host candidates are hidden behind ``<uuid>.local`` names
(as in a browser without camera permission). Join-to-first-frame runs from
the viewer creating its offer to the last packet of its first keyframe.

Run: ``.venv/bin/python bench/media_fanout.py [--quick]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: live.media, tests.support

FPS = 25
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
VIEWERS_PER_PROCESS = 16
JOIN_CONCURRENCY = 8

# --------------------------------------------------------------------------------------------------
# Signalling between the processes: one JSON object per line over TCP on 127.0.0.1 (media uses eth0).


async def rpc(port: int, message: dict[str, Any]) -> dict[str, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    reply: dict[str, Any] = json.loads(line)
    if "error" in reply:
        raise RuntimeError(reply["error"])
    return reply


async def signal_offer(port: int, op: str, peer_id: str, sdp: str) -> str:
    reply = await rpc(port, {"op": op, "peer": peer_id, "sdp": sdp})
    return str(reply["sdp"])


# --------------------------------------------------------------------------------------------------
# The hub process.


class NaiveRelayHub:
    """The baseline: aiortc's MediaRelay, one VP8 and one Opus encode per viewer."""

    def __init__(self) -> None:
        from aiortc.contrib.media import MediaRelay

        self.relay = MediaRelay()
        self.sources: dict[str, Any] = {}
        self.pcs: dict[str, Any] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def _pc(self) -> Any:
        from aiortc import RTCConfiguration, RTCPeerConnection

        return RTCPeerConnection(RTCConfiguration(iceServers=[]))

    async def _answer(self, pc: Any, sdp: str) -> str:
        from aiortc import RTCSessionDescription

        from live.media.sdp import strip_mdns_candidates, validate_offer

        validate_offer(sdp)  # same offer handling as the shared hub, so joins compare fairly
        await pc.setRemoteDescription(RTCSessionDescription(sdp=strip_mdns_candidates(sdp), type="offer"))
        return pc

    async def publish(self, peer_id: str, sdp: str) -> str:
        pc = self._pc()
        self.pcs[peer_id] = pc

        @pc.on("track")
        def on_track(track: Any) -> None:
            self.sources[track.kind] = track
            # Keep the teacher's track consumed even with no viewer (PITFALLS: unread tracks leak).
            self.tasks.append(asyncio.ensure_future(_drain(self.relay.subscribe(track, buffered=False))))

        await self._answer(pc, sdp)
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def watch(self, peer_id: str, sdp: str, layer: str = "standard") -> str:
        pc = self._pc()
        self.pcs[peer_id] = pc
        await self._answer(pc, sdp)
        for transceiver in pc.getTransceivers():
            if transceiver.kind in self.sources:
                pc.addTrack(self.relay.subscribe(self.sources[transceiver.kind], buffered=False))
        await pc.setLocalDescription(await pc.createAnswer())
        return str(pc.localDescription.sdp)

    async def remove_peer(self, peer_id: str) -> None:
        pc = self.pcs.pop(peer_id, None)
        if pc is not None:
            await pc.close()

    def stats(self) -> dict[str, object]:
        return {"peers": len(self.pcs)}

    async def close(self) -> None:
        for pc in list(self.pcs.values()):
            await pc.close()
        for task in self.tasks:
            task.cancel()


async def _drain(track: Any) -> None:
    from aiortc.mediastreams import MediaStreamError

    try:
        while True:
            await track.recv()
    except MediaStreamError:
        pass


async def serve_hub(mode: str) -> None:
    from live.media import LessonHub, MediaConfig

    spool = Path(tempfile.mkdtemp(prefix="bench-spool-"))
    hub: Any = LessonHub("bench", spool_dir=spool, config=MediaConfig()) if mode == "shared" else NaiveRelayHub()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            message = json.loads(await reader.readline())
            op = message["op"]
            if op == "publish":
                reply: dict[str, Any] = {"sdp": await hub.publish(message["peer"], message["sdp"])}
            elif op == "watch":
                reply = {"sdp": await hub.watch(message["peer"], message["sdp"], "standard")}
            elif op == "remove":
                await hub.remove_peer(message["peer"])
                reply = {}
            elif op == "stats":
                reply = {"stats": hub.stats()}
            elif op == "threads":
                reply = {"threads": {str(t.native_id): t.name for t in threading.enumerate()}}
            else:
                reply = {"error": f"unknown op {op}"}
        except Exception as error:  # report to the caller, keep serving
            reply = {"error": repr(error)}
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)
    await _wait_for_stdin_eof()
    server.close()
    await hub.close()
    await asyncio.get_running_loop().run_in_executor(None, shutil.rmtree, spool)


async def _wait_for_stdin_eof() -> None:
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)


# --------------------------------------------------------------------------------------------------
# The publisher process.


async def run_publisher(port: int) -> None:
    from tests.support.rtc import Publisher

    publisher = Publisher(width=640, height=360)
    await publisher.connect(lambda sdp: signal_offer(port, "publish", "teacher", sdp))
    print("ready", flush=True)
    await _wait_for_stdin_eof()
    await publisher.close()


# --------------------------------------------------------------------------------------------------
# The viewer processes.


@dataclass
class Counts:
    """Filled by the cut-down RTP path of one viewer's receivers."""

    video_frames: int = 0  # complete frames (marker bit) since the first keyframe
    audio_packets: int = 0
    keyframe_started: bool = False
    first_frame_at: float | None = None


def install_counting_receivers() -> None:
    """Replace aiortc's per-packet receive path (jitter buffer, decoder) with counters.

    Only for the benchmark's viewers: they must stay cheap enough that a
    2-core machine can run 64 of them next to the hub being measured.
    """
    from aiortc.codecs.vpx import VpxPayloadDescriptor
    from aiortc.rtcrtpreceiver import RTCRtpReceiver

    async def count_packet(self: Any, packet: Any, arrival_time_ms: int) -> None:
        counts: Counts | None = getattr(self, "bench_counts", None)
        if counts is None:
            return
        if self._RTCRtpReceiver__kind == "audio":
            counts.audio_packets += 1
            return
        payload = packet.payload
        if not counts.keyframe_started and payload and payload[0] & 0x10:  # start of a VP8 partition
            descriptor, data = VpxPayloadDescriptor.parse(payload)
            if descriptor.partition_id == 0 and data and not data[0] & 0x01:  # VP8 keyframe
                counts.keyframe_started = True
        if counts.keyframe_started and packet.marker:
            counts.video_frames += 1
            if counts.first_frame_at is None:
                counts.first_frame_at = time.monotonic()

    RTCRtpReceiver._handle_rtp_packet = count_packet  # type: ignore[method-assign]


class CheapViewer:
    def __init__(self, peer_id: str, *, mdns: bool) -> None:
        from tests.support.rtc import new_peer_connection

        self.peer_id = peer_id
        self.mdns = mdns
        self.pc = new_peer_connection()
        self.video = Counts()
        self.audio = Counts()
        self.joined_at = 0.0

    async def join(self, port: int) -> None:
        from aiortc import RTCSessionDescription

        from tests.support.rtc import mdns_candidates

        self.joined_at = time.monotonic()
        video = self.pc.addTransceiver("video", direction="recvonly")
        audio = self.pc.addTransceiver("audio", direction="recvonly")
        video.receiver.bench_counts = self.video  # type: ignore[attr-defined]
        audio.receiver.bench_counts = self.audio  # type: ignore[attr-defined]
        await self.pc.setLocalDescription(await self.pc.createOffer())
        offer = self.pc.localDescription.sdp
        if self.mdns:
            offer = mdns_candidates(offer)
        answer = await signal_offer(port, "watch", self.peer_id, offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    @property
    def join_to_first_frame(self) -> float | None:
        first = self.video.first_frame_at
        return None if first is None else first - self.joined_at

    async def close(self) -> None:
        await self.pc.close()


async def poll_until(predicate: Callable[[], bool], *, within: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + within
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)


async def serve_viewers(port: int, prefix: str) -> None:
    install_counting_receivers()
    viewers: list[CheapViewer] = []
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def reply(message: dict[str, Any]) -> None:
        print(json.dumps(message), flush=True)

    async def join(count: int) -> None:
        start = len(viewers)
        new = [CheapViewer(f"{prefix}-{start + i}", mdns=False) for i in range(count)]
        viewers.extend(new)
        for batch in range(0, count, JOIN_CONCURRENCY):
            await asyncio.gather(*(viewer.join(port) for viewer in new[batch : batch + JOIN_CONCURRENCY]))

    async def probe(mdns: bool, count: int) -> list[float | None]:
        times: list[float | None] = []
        for index in range(count):
            viewer = CheapViewer(f"{prefix}-probe-{'mdns' if mdns else 'raw'}-{index}", mdns=mdns)
            await viewer.join(port)
            await poll_until(lambda viewer=viewer: viewer.video.first_frame_at is not None, within=5.0, interval=0.005)
            times.append(viewer.join_to_first_frame)
            await viewer.close()
            await rpc(port, {"op": "remove", "peer": viewer.peer_id})
            await asyncio.sleep(0.6)  # past the keyframe rate limit of the previous probe
        return times

    while line := await reader.readline():
        command = json.loads(line)
        name = command["cmd"]
        if name == "join":
            await join(command["count"])
            reply({"joined": len(viewers)})
        elif name == "wait_first":
            await poll_until(lambda: all(v.video.first_frame_at is not None for v in viewers), within=command["within"])
            reply({"ready": sum(v.video.first_frame_at is not None for v in viewers)})
        elif name == "counts":
            reply(
                {
                    "frames": sum(v.video.video_frames for v in viewers),
                    "audio": sum(v.audio.audio_packets for v in viewers),
                }
            )
        elif name == "probe":
            reply({"join_s": await probe(command["mdns"], command["count"])})
        elif name == "quit":
            break
    for viewer in viewers:
        await viewer.close()
    reply({"closed": True})


# --------------------------------------------------------------------------------------------------
# The orchestrator (this process): starts the others, measures the hub.


class Child:
    """A benchmark role in its own process, driven through stdin/stdout lines."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self._selector = selectors.DefaultSelector()
        assert self.process.stdout is not None
        self._selector.register(self.process.stdout, selectors.EVENT_READ)

    @property
    def pid(self) -> int:
        return self.process.pid

    def read_line(self, within: float) -> str:
        assert self.process.stdout is not None
        if not self._selector.select(timeout=within):
            raise TimeoutError(f"no answer from {self.process.args[2:]} within {within} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.process.args[2:]} exited ({self.process.poll()})")
        return line.strip()

    def ask(self, command: dict[str, Any], within: float) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        reply: dict[str, Any] = json.loads(self.read_line(within))
        return reply

    def stop(self) -> None:
        try:
            if self.process.stdin is not None:
                self.process.stdin.close()
            self.process.wait(timeout=15)
        except (subprocess.TimeoutExpired, BrokenPipeError):
            self.process.kill()
            self.process.wait()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime and stime (fields 14 and 15 of stat; all threads of the process)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds spent by everything on this machine (all CPUs), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


@dataclass
class Result:
    mode: str
    viewers: int
    cpu_s_per_kframe: float = math.nan
    cores: float = math.nan
    rss_mb: float = math.nan
    delivered: float = math.nan  # share of expected frames
    background: float = math.nan  # cores used by processes outside this benchmark during the window
    clients: float = math.nan  # cores used by the publisher and viewer processes during the window
    join_raw_p50: float | None = None
    join_mdns_p50: float | None = None
    note: str = ""
    joins: dict[str, list[float | None]] = field(default_factory=dict)


def p50(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    if len(known) < len(values) or not known:
        return None  # a probe never got a frame: no honest median
    return statistics.median(known)


def run_case(mode: str, viewers: int, *, window: float, probes: int) -> Result:
    result = Result(mode, viewers)
    hub = Child("--role", "hub", "--mode", mode)
    children: list[Child] = [hub]
    try:
        port = int(hub.read_line(30).split()[1])
        publisher = Child("--role", "publisher", "--port", str(port))
        children.append(publisher)
        processes = max(1, math.ceil(viewers / VIEWERS_PER_PROCESS))
        groups = [Child("--role", "viewers", "--port", str(port), "--prefix", f"v{i}") for i in range(processes)]
        children.extend(groups)
        publisher.read_line(60)
        shares = [viewers // processes + (1 if i < viewers % processes else 0) for i in range(processes)]
        for group, share in zip(groups, shares, strict=True):
            group.ask({"cmd": "join", "count": share}, within=120)
        ready = sum(group.ask({"cmd": "wait_first", "within": 15}, within=30)["ready"] for group in groups)
        if ready < viewers:
            result.note = f"{viewers - ready} viewers never got a frame"
        time.sleep(1.5)  # settle after the joins before measuring

        before_frames = sum(group.ask({"cmd": "counts"}, within=30)["frames"] for group in groups)
        ours_before = sum(cpu_seconds(child.pid) for child in children)
        machine_before = machine_busy_seconds()
        cpu_before, started = cpu_seconds(hub.pid), time.monotonic()
        time.sleep(window)
        cpu_after, elapsed = cpu_seconds(hub.pid), time.monotonic() - started
        machine_after = machine_busy_seconds()
        ours_after = sum(cpu_seconds(child.pid) for child in children)
        # Other work on the machine (other test runs) competes for the same 2 cores: report it.
        result.background = max(0.0, (machine_after - machine_before) - (ours_after - ours_before)) / elapsed
        result.clients = ((ours_after - ours_before) - (cpu_after - cpu_before)) / elapsed
        after_frames = sum(group.ask({"cmd": "counts"}, within=30)["frames"] for group in groups)
        result.rss_mb = rss_mb(hub.pid)

        delivered = after_frames - before_frames
        cpu = cpu_after - cpu_before
        result.cores = cpu / elapsed
        result.delivered = delivered / (viewers * FPS * elapsed)
        result.cpu_s_per_kframe = cpu / (delivered / 1000) if delivered else math.inf

        if probes:
            raw = groups[0].ask({"cmd": "probe", "mdns": False, "count": probes}, within=60)["join_s"]
            mdns = groups[0].ask({"cmd": "probe", "mdns": True, "count": probes}, within=60)["join_s"]
            result.joins = {"raw": raw, "mdns": mdns}
            result.join_raw_p50, result.join_mdns_p50 = p50(raw), p50(mdns)
        for group in groups:
            group.ask({"cmd": "quit"}, within=60)
    except (TimeoutError, RuntimeError) as error:
        result.note = f"failed: {error}"
    finally:
        for child in reversed(children):
            child.stop()
    return result


QUIET_CORES = 0.25  # other processes' load under which a measurement counts as clean


def wait_for_quiet(max_wait: float) -> float:
    """Wait until the rest of the machine uses less than QUIET_CORES (this box is shared); return that load."""
    deadline = time.monotonic() + max_wait
    while True:
        before = machine_busy_seconds()
        time.sleep(2.0)
        load = (machine_busy_seconds() - before) / 2.0
        if load < QUIET_CORES or time.monotonic() > deadline:
            return load


def disturbance(result: Result) -> float:
    return math.inf if math.isnan(result.background) else result.background


def measure_when_quiet(mode: str, viewers: int, *, window: float, probes: int, attempts: int = 2) -> Result:
    """Run a case on a quiet machine; repeat it (up to ``attempts``) if other work disturbed it."""
    best: Result | None = None
    for attempt in range(attempts):
        wait_for_quiet(max_wait=60)
        result = run_case(mode, viewers, window=window, probes=probes)
        best = result if best is None else min(best, result, key=disturbance)
        if result.background < QUIET_CORES:
            break
        print(f"    (other load {result.background:.2f} cores during {mode} N={viewers}, attempt {attempt + 1})")
    assert best is not None
    return best


def fmt(value: float | None, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def print_table(results: list[Result]) -> None:
    header = (
        f"{'hub':<7}{'N':>4}{'CPU s/1k frames':>17}{'cores':>7}{'RSS MB':>8}{'delivered':>11}"
        f"{'join p50 raw ms':>17}{'join p50 mDNS ms':>18}{'clients':>9}{'other':>7}  note"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.mode:<7}{r.viewers:>4}{fmt(r.cpu_s_per_kframe, '.3f'):>17}{fmt(r.cores, '.2f'):>7}"
            f"{fmt(r.rss_mb, '.0f'):>8}{fmt(r.delivered * 100 if not math.isnan(r.delivered) else None, '.1f'):>10}%"
            f"{ms(r.join_raw_p50):>17}{ms(r.join_mdns_p50):>18}{fmt(r.clients, '.2f'):>9}"
            f"{fmt(r.background, '.2f'):>7}  {r.note}"
        )


def summarise(results: list[Result]) -> None:
    shared = {r.viewers: r for r in results if r.mode == "shared"}
    naive = {r.viewers: r for r in results if r.mode == "naive"}
    print()
    good_naive = [n for n, r in naive.items() if r.delivered >= 0.9 and n in shared]
    if good_naive:
        n = max(good_naive)
        ratio = naive[n].cpu_s_per_kframe / shared[n].cpu_s_per_kframe
        print(
            f"Largest N where naive delivers >= 90 %: {n}. CPU per delivered frame, naive / shared = {ratio:.1f}x "
            f"({naive[n].cpu_s_per_kframe:.3f} vs {shared[n].cpu_s_per_kframe:.3f} s per 1,000 frames) "
            f"-> target >= 10x {'MET' if ratio >= 10 else 'NOT met'}"
        )
    else:
        print("Naive never delivered >= 90 %: no ratio.")
    at32 = shared.get(32)
    if at32 is not None:
        met = at32.cores < 1.0 and at32.rss_mb < 250 and at32.delivered >= 0.9
        print(
            f"Shared at 32 viewers: {at32.cores:.2f} cores, {at32.rss_mb:.0f} MB, "
            f"{at32.delivered * 100:.1f} % delivered "
            f"-> target (< 1 core, < 250 MB, >= 90 %) {'MET' if met else 'NOT met'}"
        )
    joins = [(r.viewers, r.join_raw_p50, r.join_mdns_p50) for r in shared.values()]
    raw = [j for _, j, _ in joins if j is not None]
    mdns = [j for _, _, j in joins if j is not None]
    if raw and mdns:
        worst_raw, worst_mdns = max(raw), max(mdns)
        met = worst_raw < 0.5 and worst_mdns < 0.5 and len(raw) == len(joins) == len(mdns)
        print(
            f"Shared join-to-first-frame p50, worst over N: raw-IP {worst_raw * 1000:.0f} ms, "
            f"mDNS {worst_mdns * 1000:.0f} ms -> target (< 500 ms both) {'MET' if met else 'NOT met'}"
        )


def orchestrate(args: argparse.Namespace) -> None:
    counts = [1, 2, 4, 8] if args.quick else [1, 2, 4, 8, 16, 32, 64]
    if args.viewers:
        counts = [int(n) for n in args.viewers.split(",")]
    window = args.window or (4.0 if args.quick else 8.0)
    probes = 2 if args.quick else 3
    results: list[Result] = []
    naive_saturated = False
    started = time.monotonic()
    print(
        f"media fan-out benchmark: 640x360 @ {FPS} fps lesson, window {window:.0f} s, "
        f"{os.cpu_count()} CPUs, hub measured alone in its own process",
        flush=True,
    )
    for n in counts:
        for mode in ("shared", "naive"):
            if mode == "naive" and naive_saturated:
                results.append(Result(mode, n, note="skipped: naive below 50 % at a smaller N"))
                continue
            result = measure_when_quiet(mode, n, window=window, probes=probes)
            results.append(result)
            print(
                f"  {mode:<6} N={n:<3} cores={fmt(result.cores, '.2f')} delivered="
                f"{fmt(result.delivered * 100, '.1f')}% join raw/mDNS={ms(result.join_raw_p50)}/"
                f"{ms(result.join_mdns_p50)} ms other-load={fmt(result.background, '.2f')} cores {result.note}",
                flush=True,
            )
            if mode == "naive" and not result.delivered >= 0.5:
                naive_saturated = True
    print()
    print_table(results)
    summarise(results)
    busy = [r.background for r in results if not math.isnan(r.background)]
    if busy and max(busy) > QUIET_CORES:
        print(
            f"WARNING: other processes used up to {max(busy):.2f} cores during measurements; "
            "delivery and join times are pessimistic. Re-run on an idle machine."
        )
    print()
    print(f"Total run time {time.monotonic() - started:.0f} s.")
    command = " ".join(["cd", str(ROOT), "&&", ".venv/bin/python", "bench/media_fanout.py", *sys.argv[1:]])
    print(f"Reproduce: {command}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N up to 8 and a 4 s window")
    parser.add_argument("--viewers", help="comma-separated viewer counts, e.g. 1,8,32")
    parser.add_argument("--window", type=float, help="measurement window in seconds")
    parser.add_argument("--role", choices=["hub", "publisher", "viewers"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["shared", "naive"], help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--prefix", default="v", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "hub":
        asyncio.run(serve_hub(args.mode))
    elif args.role == "publisher":
        asyncio.run(run_publisher(args.port))
    elif args.role == "viewers":
        asyncio.run(serve_viewers(args.port, args.prefix))
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
