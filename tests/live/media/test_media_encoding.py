"""The shared encoders' rules: frame-rate gate, keyframe scheduling, scaling, the hub clock."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from live.media.audio import OpusEncoderPipeline
from live.media.clock import VIDEO_CLOCK_RATE, MediaClock, SourceTimeline
from live.media.video import LIGHT, STANDARD, FrameRateGate, KeyframeScheduler, LayerEncoder, fit_picture
from tests.support.media import decode_clip
from tests.support.rtc import wait_until


def _accepted(gate: FrameRateGate, source_fps: float, seconds: float) -> int:
    return sum(gate.accept(index / source_fps) for index in range(round(source_fps * seconds)))


@pytest.mark.parametrize(("source_fps", "layer_fps"), [(30, 25), (25, 25), (25, 15), (30, 15), (20, 25)])
def test_the_frame_rate_gate_holds_the_layer_rate(source_fps: float, layer_fps: float) -> None:
    accepted = _accepted(FrameRateGate(layer_fps), source_fps, 10.0)
    assert accepted == pytest.approx(min(source_fps, layer_fps) * 10, abs=2)


def test_the_frame_rate_gate_does_not_burst_after_a_pause() -> None:
    gate = FrameRateGate(15)
    assert _accepted(gate, 25, 1.0) == pytest.approx(15, abs=1)
    # Five seconds without frames, then 25 fps again: still 15 fps, no catch-up.
    resumed = sum(gate.accept(6.0 + index / 25) for index in range(25))
    assert resumed == pytest.approx(15, abs=1)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
@pytest.mark.timeout(5)
async def test_forced_keyframes_are_rate_limited_and_a_request_in_the_gap_is_deferred_not_dropped() -> None:
    clock = FakeTime()
    scheduler = KeyframeScheduler(interval_s=10.0, min_gap_s=0.2, now=clock, loop=asyncio.get_running_loop())
    assert scheduler.take()  # the very first frame is a keyframe
    clock.now = 0.04
    assert not scheduler.take()

    scheduler.request()  # inside the gap: deferred
    scheduler.request()  # merged with the first
    clock.now = 0.08
    assert not scheduler.take()
    await asyncio.sleep(0.25)  # the end of the gap (real timer)
    clock.now = 0.3
    assert scheduler.take()
    assert not scheduler.take()

    clock.now = 0.6  # outside the gap: immediate
    scheduler.request()
    assert scheduler.take()
    scheduler.cancel()


def test_the_periodic_keyframe_comes_every_interval() -> None:
    clock = FakeTime()
    loop = asyncio.new_event_loop()  # only needed for deferred requests, none here
    scheduler = KeyframeScheduler(interval_s=2.0, min_gap_s=0.5, now=clock, loop=loop)
    keyframes = []
    for index in range(250):  # 10 s at 25 fps
        clock.now = index / 25
        if scheduler.take():
            keyframes.append(clock.now)
    loop.close()
    assert keyframes == pytest.approx([0.0, 2.0, 4.0, 6.0, 8.0])


def _luma(frame: VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="gray")


def test_fit_picture_always_returns_a_new_frame_of_the_layer_size() -> None:
    clip = decode_clip(width=640, height=360)
    source = VideoFrame.from_ndarray(clip.pictures[40], format="yuv420p")
    same = fit_picture(source, 640, 360)
    assert same is not source and (same.width, same.height) == (640, 360)
    assert np.array_equal(_luma(same), _luma(source))
    smaller = fit_picture(source, 320, 180)
    assert (smaller.width, smaller.height) == (320, 180)


def test_a_4_3_camera_gets_black_bars_instead_of_being_stretched() -> None:
    picture = np.full((480 * 3 // 2, 640), 128, np.uint8)
    picture[:480] = 200  # bright luma everywhere
    source = VideoFrame.from_ndarray(picture, format="yuv420p")
    fitted = _luma(fit_picture(source, 640, 360))
    # 640x480 into 640x360: the picture is 480x360, centred, with 80-pixel bars.
    assert fitted.shape == (360, 640)
    assert fitted[:, :70].max() <= 20 and fitted[:, -70:].max() <= 20
    assert fitted[:, 90:550].min() >= 190


def test_the_hub_clock_stays_monotonic_across_publisher_sessions() -> None:
    clock = MediaClock()
    timeline = SourceTimeline(clock, VIDEO_CLOCK_RATE)
    first = [timeline.map(index / 25) for index in range(10)]
    assert first == sorted(first) and len(set(first)) == len(first)
    # Spacing follows the source timestamps, not arrival times.
    assert np.diff(first) == pytest.approx([VIDEO_CLOCK_RATE / 25] * 9, abs=1)
    timeline.restart()  # the teacher reloads: source time restarts at 0
    second = timeline.map(0.0)
    assert second > first[-1]


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_a_layer_encodes_every_offered_frame_once_at_its_size_and_rate() -> None:
    clip = decode_clip(width=640, height=360)
    clock = MediaClock()
    standard = LayerEncoder(
        STANDARD, keyframe_interval_s=10, keyframe_min_gap_s=0.5, now=clock.now, thread_name="t-std"
    )
    light = LayerEncoder(LIGHT, keyframe_interval_s=10, keyframe_min_gap_s=0.5, now=clock.now, thread_name="t-light")
    received: dict[str, list[int]] = {"standard": [], "light": []}

    class Sink:
        def __init__(self, name: str) -> None:
            self.name = name

        def push(self, packet: object) -> None:
            received[self.name].append(packet.pts)  # type: ignore[attr-defined]

    standard.fanout.add(Sink("standard"))
    light.fanout.add(Sink("light"))
    try:
        for index in range(50):  # 2 s of 25 fps video, each frame once the previous one is encoded
            frame = VideoFrame.from_ndarray(clip.pictures[index], format="yuv420p")
            pts = index * VIDEO_CLOCK_RATE // 25
            standard.offer(frame, pts)
            light.offer(frame, pts)
            await wait_until(
                lambda: all(layer.frames_encoded == layer.frames_offered for layer in (standard, light)),
                within=2,
                what="the encoders",
                interval=0.002,
            )
    finally:
        await standard.close()
        await light.close()
    assert len(received["standard"]) == 50
    assert len(received["light"]) == pytest.approx(30, abs=1)
    # Same clock: every light packet carries the pts of a standard one.
    assert set(received["light"]) <= set(received["standard"])
    assert standard.keyframes == 1 and light.keyframes == 1


@pytest.mark.asyncio
@pytest.mark.timeout(20)
async def test_a_layer_nobody_watches_costs_nothing_and_resumes_on_a_keyframe() -> None:
    clip = decode_clip(width=640, height=360)
    clock = MediaClock()
    light = LayerEncoder(LIGHT, keyframe_interval_s=10, keyframe_min_gap_s=0.5, now=clock.now, thread_name="t-idle")
    received: list[bool] = []

    class Sink:
        def push(self, packet: object) -> None:
            received.append(bool(packet.is_keyframe))  # type: ignore[attr-defined]

    async def play(first: int, count: int) -> None:
        for index in range(first, first + count):
            frame = VideoFrame.from_ndarray(clip.pictures[index], format="yuv420p")
            light.offer(frame, index * VIDEO_CLOCK_RATE // 25)
            # Next frame once this one is encoded (or was not wanted): no drops for being busy.
            await wait_until(lambda: light.frames_encoded == light.frames_offered, within=2, what="the encoder")

    sink = Sink()
    try:
        light.fanout.add(sink)
        await play(0, 10)
        light.fanout.discard(sink)
        encoded = light.frames_encoded
        await play(10, 25)  # nobody subscribed: nothing encoded
        assert light.frames_encoded == encoded
        received.clear()
        light.fanout.add(sink)
        await play(35, 10)
    finally:
        await light.close()
    assert received and received[0] is True  # the first packet after the pause is a keyframe
    assert received.count(True) == 1


@pytest.mark.asyncio
@pytest.mark.timeout(10)
async def test_the_shared_opus_stream_keeps_increasing_timestamps_whatever_the_input_does() -> None:
    clip = decode_clip(width=640, height=360)
    pipeline = OpusEncoderPipeline(bit_rate=32_000, thread_name="t-opus")
    received: list[int] = []

    class Sink:
        def push(self, packet: object) -> None:
            received.append(packet.pts)  # type: ignore[attr-defined]

    pipeline.fanout.add(Sink())
    # On time, a lost packet (hole), a backlog arriving early, a teacher reload (long hole).
    starts = [0, 960, 1920, 3840, 4800, 4800, 5760, 6720, 60_000, 60_960, 61_920]
    try:
        for index, pts in enumerate(starts):
            frame = AudioFrame.from_ndarray(clip.audio_chunks[index], format="s16", layout="stereo")
            frame.sample_rate = 48_000
            pipeline.offer(frame, pts)
            await asyncio.sleep(0.005)
        await wait_until(lambda: len(received) >= 9, within=2, what="the Opus packets")
    finally:
        await pipeline.close()
    assert received == sorted(set(received))  # strictly increasing
    steps = np.diff(received)
    assert set(steps[:6]) == {960}  # the hole was filled with silence, the early frame appended
    assert received[-1] >= 60_000 - 960  # the reload restarted the timeline later on
