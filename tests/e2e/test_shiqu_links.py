"""Live lessons over real Shiqu links: one classroom Chromium inside a network namespace whose link to the
platform is slow, long and lossy (tests/e2e/shiqu_link.py), the teacher's Chromium on this machine playing
Big Buck Bunny. What the classroom experiences is measured with Chromium's own getStats().

Profiles (the issue "live lessons over real Shiqu links"):

* P1: 1 Mbps down, 512 kbps up, 300 ms RTT, 3 % loss each way: the link itself is checked here; the
  viewer's targets (video frozen <= 2 %, concealed audio <= 1 %) wait for per-viewer quality adaptation and
  are measured with ``python -m tests.e2e.shiqu_link measure P1`` meanwhile (see the note further down).
* P3: P1 with the link cut for 10 s: playing again within 5 s after the link returns (the page reconnects
  by itself with a new socket and peer connection).
* UDP blocked: the school lets only TCP out. The classroom watches through coturn over TCP or TLS.
* P2 (300 kbps, 600 ms RTT, 8 % loss) has no pass/fail test: the product does not adapt quality per viewer
  yet. ``python -m tests.e2e.shiqu_link measure P2`` prints its figures (``measure_profile`` below).

The link itself (RTT, loss, rates) is checked first, with ICMP echo and UDP from inside the namespace.
Every figure is printed (``-s`` shows them) for docs/benchmarks.md.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, Playwright

from .browser import launch, login, status, wait_status
from .harness import Platform, running_platform, wait_until
from .shiqu_link import P1, UDP_BLOCKED, Profile, ShiquLink, missing_requirements, shiqu_link
from .test_live_journey import FPS, STANDARD_MIN_FPS, _lesson_id, _start_broadcast
from .turn import coturn

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

WINDOW_S = 30.0  # the measuring window of the issue
SETTLE_S = 3.0  # after the first frames, before measuring: the join itself is not the steady state
CUT_S = 10.0
BACK_WITHIN_S = 5.0

# Run in the viewer page: what its current peer connection has received so far.
STATS_JS = """async () => {
  const state = window.jinshi;
  const pc = state && state.pc;
  if (!pc) return null;
  const stats = await pc.getStats();
  const out = { at: performance.now(), offerAt: state.timeline ? state.timeline.offerAt : null,
                video: null, audio: null, pair: null, local: null };
  let pairId = null;
  stats.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') out.video = r;
    if (r.type === 'inbound-rtp' && r.kind === 'audio') out.audio = r;
    if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId;
  });
  if (pairId) {
    const pair = stats.get(pairId);
    out.pair = { currentRoundTripTime: pair.currentRoundTripTime };
    const local = stats.get(pair.localCandidateId);
    out.local = { candidateType: local.candidateType, relayProtocol: local.relayProtocol || null,
                  protocol: local.protocol };
  }
  return JSON.parse(JSON.stringify(out));
}"""

# Cheaper, for sampling every 250 ms: which peer connection, and how many frames it decoded.
PROGRESS_JS = """async () => {
  const state = window.jinshi;
  if (!state || !state.pc) return [null, 0];
  const stats = await state.pc.getStats();
  let frames = 0;
  stats.forEach((r) => { if (r.type === 'inbound-rtp' && r.kind === 'video') frames = r.framesDecoded || 0; });
  return [state.timeline ? state.timeline.offerAt : null, frames];
}"""


@dataclass
class Figures:
    """What one classroom experienced over a window, from getStats() deltas."""

    profile: str
    window_s: float
    fps: float
    freeze_count: int
    frozen_s: float
    longest_stall_s: float
    concealed_pct: float
    video_loss_pct: float
    nacks: int
    plis: int
    audio_loss_pct: float
    video_jitter_buffer_ms: float
    audio_jitter_buffer_ms: float
    rtt_ms: float
    video_kbit: float
    reconnected: bool

    @property
    def frozen_pct(self) -> float:
        return 100.0 * self.frozen_s / self.window_s

    def __str__(self) -> str:
        return (
            f"{self.profile}: {self.window_s:.1f} s window | video {self.fps:.1f} fps decoded, "
            f"{self.freeze_count} freezes, frozen {self.frozen_s:.2f} s ({self.frozen_pct:.1f} %), "
            f"longest stall {self.longest_stall_s:.2f} s, {self.video_kbit:.0f} kbit/s, packets lost "
            f"{self.video_loss_pct:.1f} %, {self.nacks} NACKs, {self.plis} PLIs, "
            f"jitter buffer {self.video_jitter_buffer_ms:.0f} ms | audio concealed {self.concealed_pct:.2f} %, "
            f"packets lost {self.audio_loss_pct:.1f} %, jitter buffer {self.audio_jitter_buffer_ms:.0f} ms | "
            f"RTT {self.rtt_ms:.0f} ms | reconnected: {self.reconnected}"
        )


def _delta(end: dict[str, Any], start: dict[str, Any], key: str) -> float:
    return float(end.get(key) or 0) - float(start.get(key) or 0)


def _pct(part: float, whole: float) -> float:
    return 100.0 * part / whole if whole > 0 else 0.0


def _loss_pct(end: dict[str, Any], start: dict[str, Any]) -> float:
    lost = _delta(end, start, "packetsLost")
    return _pct(lost, lost + _delta(end, start, "packetsReceived"))


def _buffer_ms(end: dict[str, Any], start: dict[str, Any]) -> float:
    emitted = _delta(end, start, "jitterBufferEmittedCount")
    return 1000.0 * _delta(end, start, "jitterBufferDelay") / emitted if emitted > 0 else 0.0


def _with_media(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    return stats if stats and stats["video"] and stats["audio"] else None


def measure(page: Page, profile: str, seconds: float = WINDOW_S) -> Figures:
    """Watch ``page`` for ``seconds`` and return what its classroom experienced."""
    start = _with_media(page.evaluate(STATS_JS))
    assert start, "no inbound media to measure"
    t0 = time.monotonic()
    last_change, longest, last_frames, offers = t0, 0.0, -1, {start["offerAt"]}
    while (now := time.monotonic()) < t0 + seconds:
        offer, decoded = page.evaluate(PROGRESS_JS)
        offers.add(offer)
        if decoded != last_frames:
            last_change, last_frames = now, decoded
        longest = max(longest, now - last_change)
        time.sleep(0.25)
    # Mid-reconnect there is no peer connection (or no media yet): wait for the next one.
    end = wait_until(lambda: _with_media(page.evaluate(STATS_JS)), timeout=20, what="inbound media to measure")
    window = (end["at"] - start["at"]) / 1000
    offers.add(end["offerAt"])
    if end["offerAt"] != start["offerAt"]:  # a new peer connection counts from zero
        start = {"video": {}, "audio": {}}
    video_start, video_end, audio_start, audio_end = start["video"], end["video"], start["audio"], end["audio"]
    return Figures(
        profile=profile,
        window_s=window,
        fps=_delta(video_end, video_start, "framesDecoded") / window,
        freeze_count=int(_delta(video_end, video_start, "freezeCount")),
        frozen_s=_delta(video_end, video_start, "totalFreezesDuration"),
        longest_stall_s=longest,
        concealed_pct=_pct(
            _delta(audio_end, audio_start, "concealedSamples"), _delta(audio_end, audio_start, "totalSamplesReceived")
        ),
        video_loss_pct=_loss_pct(video_end, video_start),
        nacks=int(_delta(video_end, video_start, "nackCount")),
        plis=int(_delta(video_end, video_start, "pliCount")),
        audio_loss_pct=_loss_pct(audio_end, audio_start),
        video_jitter_buffer_ms=_buffer_ms(video_end, video_start),
        audio_jitter_buffer_ms=_buffer_ms(audio_end, audio_start),
        rtt_ms=1000.0 * float((end["pair"] or {}).get("currentRoundTripTime") or 0),
        video_kbit=_delta(video_end, video_start, "bytesReceived") * 8 / 1000 / window,
        reconnected=len(offers) > 1,
    )


def wait_playing(page: Page, *, timeout: float) -> float:
    """Seconds until the current peer connection decodes frames (3 more than when first seen)."""
    t0 = time.monotonic()
    baseline: list[Any] = [None, 0]

    def playing() -> bool:
        offer, decoded = page.evaluate(PROGRESS_JS)
        if offer != baseline[0]:
            baseline[:] = [offer, decoded]
            return False
        return bool(decoded >= baseline[1] + 3)

    wait_until(playing, timeout=timeout, interval=0.1, what="the classroom decoding frames")
    return time.monotonic() - t0


@dataclass
class Lesson:
    platform: Platform
    link: ShiquLink
    teacher: Page
    viewer: Page
    lesson_id: int
    joined_s: float  # from opening the watch page to the first decoded frames
    sockets: list[float]  # when the classroom page opened each lesson socket (s after opening the page)


@contextlib.contextmanager
def lesson_over(
    link: ShiquLink,
    tmp: Path,
    playwright: Playwright,
    camera: tuple[Path, Path],
    *,
    extra_env: dict[str, str] | None = None,
    viewer_flags: list[str] | None = None,
) -> Iterator[Lesson]:
    """The platform (daphne reachable from the namespace), the teacher on air from this machine, and
    classroom1 (Shiqu No. 1 Primary School) watching from inside the namespace, without camera permission:
    its ICE candidates are mDNS names, as in a real classroom."""
    with running_platform(tmp, bind_host=link.host_ip, extra_env=extra_env) as platform:
        lesson_id = _lesson_id(platform)
        teacher_browser = launch(playwright, camera=camera)
        viewer_browser = launch(playwright, netns=link.netns, extra=viewer_flags)
        try:
            teacher = login(teacher_browser, platform.web[0], "teacher")
            _start_broadcast(teacher, lesson_id)
            viewer = login(viewer_browser, platform.web[0].replace("127.0.0.1", link.host_ip), "classroom1")
            sockets: list[float] = []
            opened = time.monotonic()
            viewer.on("websocket", lambda _ws: sockets.append(round(time.monotonic() - opened, 2)))
            viewer.goto(f"/lessons/{lesson_id}/watch/")
            try:
                wait_status(viewer, "live", timeout=45)
                wait_playing(viewer, timeout=20)
            except AssertionError as error:
                raise AssertionError(f"{error}; lesson sockets opened at {sockets} s") from None
            joined = time.monotonic() - opened
            assert ".local" in viewer.evaluate("window.jinshi.pc.localDescription.sdp"), "no mDNS candidates"
            print(
                f"{link.profile.name}: classroom playing {joined:.2f} s after opening the watch page "
                f"(lesson sockets opened at {sockets} s)"
            )
            yield Lesson(platform, link, teacher, viewer, lesson_id, joined, sockets)
        finally:
            teacher_browser.close()
            viewer_browser.close()


def _print_link(link: ShiquLink) -> None:
    print(f"{link.profile.name} link counters: {link.counters()} relay: {link.relay_stats()}")


def _tools_or_skip() -> None:
    reason = missing_requirements()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI needs it)")
        pytest.skip(reason)


@pytest.fixture
def link_tools() -> None:
    _tools_or_skip()


def test_the_p1_link_has_the_rtt_loss_and_rates_it_models(link_tools: None) -> None:
    """The link before any lesson: ICMP echo from inside the namespace, then UDP each way at twice the rate."""
    with shiqu_link(P1) as link:
        ping = link.ping(count=150, interval=0.02)
        print(f"P1 {ping}")
        down = link.udp_rate("down", offered_kbit=2 * 1000)
        up = link.udp_rate("up", offered_kbit=2 * 512)
        print(f"P1 {down}; {up}")
        counters = link.counters()
        print(f"P1 counters {counters}")
    assert ping.received >= 100, ping
    assert 285 <= ping.median_ms <= 330 and min(ping.rtts_ms) >= 295, ping
    # Loss is drawn for each packet on each direction: 3 % one way, ~6 % for an echo and its reply.
    for direction in ("down", "up"):
        seen, dropped = counters[direction]["seen"], counters[direction]["dropped"]
        assert seen > 300 and 1.0 <= 100 * dropped / seen <= 6.0, counters
    # Down is measured after the loss (3 % less than the shaper's rate), up before it.
    assert 0.85 * 1000 <= down.kbit <= 1.05 * 1000, down
    assert 0.90 * 512 <= up.kbit <= 1.10 * 512, up


# P1's targets (video frozen <= 2 %, concealed audio <= 1 % on 1 Mbps / 300 ms / 3 % loss) need per-viewer
# quality adaptation, which the platform does not have yet: the standard layer (~600 kbps) plus retransmissions
# congest the 1 Mbps link. Until it lands, P1 (like P2) is measured, not asserted:
#     python -m tests.e2e.shiqu_link measure P1
# Measured 2026-12-03: 24.6 % frozen before the jitter-buffer change, 64.8 % after it under congestion (RTT
# 558 ms, 24 % loss at the shaper), audio concealed 0.3-0.9 %. See docs/benchmarks.md.


PLAYING_MIN_FPS = 5.0


def test_p3_after_a_10_s_cut_the_classroom_plays_again_within_5_s(
    link_tools: None, tmp_path: Path, playwright_session: Playwright, camera_files: tuple[Path, Path]
) -> None:
    with shiqu_link(P1) as link, lesson_over(link, tmp_path, playwright_session, camera_files) as lesson:
        viewer = lesson.viewer
        time.sleep(SETTLE_S)
        cut_at = time.monotonic()
        link.down()
        try:
            wait_until(lambda: status(viewer) == "reconnecting", timeout=CUT_S - 1, what="reconnecting shown")
            noticed = time.monotonic() - cut_at
            time.sleep(max(0.0, cut_at + CUT_S - time.monotonic()))  # the rest of the cut
        finally:
            link.up()
        back = wait_playing(viewer, timeout=30)
        print(
            f"P3: the page showed 'reconnecting' {noticed:.2f} s into the cut; playing again {back:.2f} s "
            f"after the link returned"
        )
        after = measure(viewer, "P3 after the cut", seconds=10)
        print(after)
        _print_link(link)
    assert back <= BACK_WITHIN_S, f"playing again only {back:.1f} s after the link returned"
    # "Playing again" is the P3 target; how smoothly it plays on this lossy link is P1's (measured, not yet
    # asserted, see above): here the picture must be moving, not merely one frame through.
    assert after.fps >= PLAYING_MIN_FPS, after


def test_udp_blocked_the_classroom_watches_through_turn_over_tcp(
    link_tools: None, tmp_path: Path, playwright_session: Playwright, camera_files: tuple[Path, Path]
) -> None:
    with shiqu_link(UDP_BLOCKED) as link, coturn(tmp_path / "turn", listening_ip=link.host_ip) as turn:
        env = {
            "LIVE_TURN_URLS": ",".join(turn.urls),
            "LIVE_TURN_SECRET": turn.secret,
            "LIVE_MEDIA_WORKER_TURN": "false",  # the worker is on this machine: it needs no relay of its own
        }
        # Chromium checks the TURN server's certificate (for turns:); ours is self-signed for the test.
        with lesson_over(
            link,
            tmp_path,
            playwright_session,
            camera_files,
            extra_env=env,
            viewer_flags=["--ignore-certificate-errors"],
        ) as lesson:
            selected = lesson.viewer.evaluate(STATS_JS)["local"]
            figures = measure(lesson.viewer, "UDP blocked (TURN)", seconds=15)
            print(f"UDP blocked: selected local candidate {selected}")
            print(figures)
            _print_link(link)
            udp_dropped = link.counters()
    assert selected["candidateType"] == "relay" and selected["relayProtocol"] in ("tcp", "tls"), selected
    assert udp_dropped["up"]["dropped"] > 0, "the namespace sent no UDP at all: the block was never tested"
    assert figures.fps >= STANDARD_MIN_FPS, f"only {figures.fps:.1f} decoded frames/s through TURN: {figures}"
    assert not figures.reconnected, figures


def measure_profile(profile: Profile, *, seconds: float = WINDOW_S, layer: str = "standard") -> Figures | None:
    """A lesson over ``profile``'s link, outside pytest: print and return the classroom's figures (None when
    it never played). For profiles without a pass/fail test (P2): ``python -m tests.e2e.shiqu_link measure
    P2`` (``--layer light`` switches the classroom to the light layer first, as its teacher could)."""
    from playwright.sync_api import sync_playwright

    from tests.support.media import make_y4m_and_wav

    figures = None
    with tempfile.TemporaryDirectory(prefix=f"shiqu-{profile.name}-") as folder:
        tmp = Path(folder)
        camera = make_y4m_and_wav(tmp / "camera", width=640, height=360, fps=FPS, seconds=8)
        with sync_playwright() as playwright, shiqu_link(profile) as link:
            print(f"{profile.name}: {profile}")
            print(f"{profile.name}: {link.ping(count=50, interval=0.02)}")
            try:
                with lesson_over(link, tmp / "lesson", playwright, camera) as lesson:
                    if layer != "standard":
                        lesson.viewer.click(f"#layer-{layer}")
                        wait_until(
                            lambda: lesson.viewer.evaluate("document.getElementById('remote').videoWidth") == 320,
                            timeout=30,
                            what="the light layer's picture",
                        )
                    time.sleep(SETTLE_S)
                    figures = measure(lesson.viewer, f"{profile.name} ({layer} layer)", seconds=seconds)
                    print(figures)
            except AssertionError as error:
                print(f"{profile.name}: the classroom never played: {error}")
            _print_link(link)
    return figures
