"""Shared video encoders: one libvpx encode per quality layer, whatever the audience.

A :class:`LayerEncoder` takes the teacher's decoded frames, scales each to
its layer's fixed size, encodes it once (in its own thread, off the event
loop) and hands the VP8 packets to every subscriber (viewers' senders, the
recorder). Keyframes are made on demand for late joiners and layer
switches, rate-limited per encoder by :class:`KeyframeScheduler`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.frame import PictureType, VideoFrame
from av.video.reformatter import VideoReformatter

from live.media.clock import VIDEO_CLOCK_RATE, VIDEO_TIME_BASE
from live.media.fanout import PacketFanout

logger = logging.getLogger(__name__)

# yuv420p black: luma 16, chroma 128 (video range, what browsers send).
_BLACK_LUMA = 16
_NEUTRAL_CHROMA = 128
# Aspect ratios closer than this are scaled without bars (the distortion is invisible).
_ASPECT_TOLERANCE = 0.02


@dataclass(frozen=True)
class LayerSpec:
    """One quality layer: fixed picture size, frame rate and constant bit rate."""

    name: str
    width: int
    height: int
    fps: float
    bit_rate: int

    def __post_init__(self) -> None:
        if self.width % 2 or self.height % 2:
            raise ValueError("yuv420p needs even layer dimensions")
        if self.fps <= 0 or self.bit_rate <= 0:
            raise ValueError("fps and bit_rate must be positive")


STANDARD = LayerSpec("standard", 640, 360, 25, 600_000)
LIGHT = LayerSpec("light", 320, 180, 15, 150_000)


class FrameRateGate:
    """Decides which source frames a layer encodes, to hold its frame rate.

    A credit scheme on frame times: a 30 fps source gives 25 fps, a 25 fps
    source gives 15 fps, evenly spread. After a pause the schedule restarts
    instead of letting frames through in a burst.
    """

    def __init__(self, fps: float) -> None:
        self._interval = 1.0 / fps
        # Accept frames up to this early: source timestamps jitter by a few ms.
        self._slack = self._interval * 0.15
        self._next_due: float | None = None

    def accept(self, media_seconds: float) -> bool:
        if self._next_due is not None and media_seconds < self._next_due - self._slack:
            return False
        if self._next_due is None or media_seconds - self._next_due > self._interval:
            self._next_due = media_seconds + self._interval
        else:
            self._next_due += self._interval
        return True


class KeyframeScheduler:
    """When the shared encoder must make a keyframe.

    Periodic (every ``interval_s``) and on request. Requests are rate-limited
    to one keyframe per ``min_gap_s``: a keyframe goes to every viewer of the
    encoder (3-10 KB each), and several viewers joining at once must not turn
    the stream into keyframes only. A request inside the gap is deferred to
    the end of the gap, never dropped: the viewer who asked has no picture
    until it comes. All methods run on the event loop.
    """

    def __init__(
        self, *, interval_s: float, min_gap_s: float, now: Callable[[], float], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._interval_s = interval_s
        self._min_gap_s = min_gap_s
        self._now = now
        self._loop = loop
        self._last_keyframe_at: float | None = None
        self._pending = False
        self._deferred: asyncio.TimerHandle | None = None
        self.requests = 0

    def request(self) -> None:
        self.requests += 1
        if self._pending or self._deferred is not None:
            return  # one keyframe will serve every request made meanwhile
        since = None if self._last_keyframe_at is None else self._now() - self._last_keyframe_at
        if since is None or since >= self._min_gap_s:
            self._pending = True
        else:
            self._deferred = self._loop.call_later(self._min_gap_s - since, self._release_deferred)

    def _release_deferred(self) -> None:
        self._deferred = None
        self._pending = True

    def take(self, *, force: bool = False) -> bool:
        """Called once per frame about to be encoded: make it a keyframe?"""
        now = self._now()
        due = self._last_keyframe_at is None or now - self._last_keyframe_at >= self._interval_s
        if self._pending or due or force:
            self._pending = False
            self._last_keyframe_at = now
            return True
        return False

    def note_keyframe(self) -> None:
        """The encoder made a keyframe by itself; restart the periodic interval."""
        self._last_keyframe_at = self._now()

    def cancel(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None


def _plane_array(frame: VideoFrame, index: int) -> np.ndarray:
    plane = frame.planes[index]
    # Rows may be padded (line_size >= width): view the visible part only.
    return np.frombuffer(memoryview(plane), np.uint8).reshape(plane.height, plane.line_size)[:, : plane.width]


def fit_picture(frame: VideoFrame, width: int, height: int, reformatter: VideoReformatter | None = None) -> VideoFrame:
    """Return a NEW yuv420p frame of exactly ``width`` x ``height`` showing ``frame``.

    The whole source picture stays visible: a different aspect ratio (a 4:3
    webcam into a 16:9 layer) gets black bars instead of being stretched. The
    result is always a new frame, never ``frame`` itself: the source frame is
    shared by all layers' threads, and the encoder thread sets ``pts`` and
    ``pict_type`` on what it encodes (``reformat()`` returns its input
    untouched when nothing changes).

    Each thread must pass its own ``reformatter``: ``VideoFrame.reformat()``
    caches one swscale context on the frame, and two layer threads scaling
    the same source frame through it deadlocked inside swscale.
    """
    if reformatter is None:
        reformatter = VideoReformatter()
    source_aspect = frame.width / frame.height
    target_aspect = width / height
    if abs(source_aspect / target_aspect - 1.0) <= _ASPECT_TOLERANCE:
        scaled = reformatter.reformat(frame, width=width, height=height, format="yuv420p", threads=1)
        if scaled is frame:
            scaled = VideoFrame.from_ndarray(frame.to_ndarray(), format="yuv420p")
        return scaled

    if source_aspect > target_aspect:
        fit_w, fit_h = width, max(2, round(width / source_aspect / 2) * 2)
    else:
        fit_w, fit_h = max(2, round(height * source_aspect / 2) * 2), height
    scaled = reformatter.reformat(frame, width=fit_w, height=fit_h, format="yuv420p", threads=1)
    canvas = VideoFrame(width, height, "yuv420p")
    for index, fill in enumerate((_BLACK_LUMA, _NEUTRAL_CHROMA, _NEUTRAL_CHROMA)):
        target = _plane_array(canvas, index)
        source = _plane_array(scaled, index)
        target.fill(fill)
        top = (target.shape[0] - source.shape[0]) // 2
        left = (target.shape[1] - source.shape[1]) // 2
        target[top : top + source.shape[0], left : left + source.shape[1]] = source
    return canvas


def _vp8_options(spec: LayerSpec) -> dict[str, str]:
    rate = str(spec.bit_rate)
    return {
        "deadline": "realtime",
        "cpu-used": "-6",  # aiortc's choice; measured ~2.5 ms/frame at 640x360 here
        "lag-in-frames": "0",  # every frame out immediately: live
        # CBR: bit_rate, minrate, maxrate and a one-second buffer all equal
        # (PITFALLS.md: holds each second within ~25 %, no huge first keyframe).
        "minrate": rate,
        "maxrate": rate,
        "bufsize": rate,
        "undershoot-pct": "100",
        "overshoot-pct": "15",
        "static-thresh": "1",
        # Frames stay decodable after a lost reference where possible: the
        # viewers' links are lossy and a keyframe costs everyone.
        "error-resilient": "1",
        # Cap keyframe size at 3x an average frame, so a forced keyframe does not
        # blow through a thin link's budget.
        "max-intra-rate": "300",
    }


class LayerEncoder:
    """One quality layer: gate, scale, encode once, fan out packets.

    Frames are offered on the event loop; at most one waits while the
    encoder is busy (a newer frame replaces it), so a slow machine drops
    frames instead of queueing them. Encoding runs in the layer's own
    thread; the packets are fanned out on the loop.
    """

    def __init__(
        self,
        spec: LayerSpec,
        *,
        keyframe_interval_s: float,
        keyframe_min_gap_s: float,
        now: Callable[[], float],
        thread_name: str,
    ) -> None:
        self.spec = spec
        self.fanout = PacketFanout()
        self.frames_offered = 0
        self.frames_encoded = 0
        self.frames_dropped_busy = 0
        self.keyframes = 0
        self.bytes_encoded = 0
        self._loop = asyncio.get_running_loop()
        self._gate = FrameRateGate(spec.fps)
        self.keyframe_scheduler = KeyframeScheduler(
            interval_s=keyframe_interval_s, min_gap_s=keyframe_min_gap_s, now=now, loop=self._loop
        )
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._codec: av.VideoCodecContext | None = None
        self._reformatter = VideoReformatter()  # used by this layer's thread only
        self._waiting: tuple[VideoFrame, int] | None = None
        self._resume_with_keyframe = False
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name=f"{thread_name}-encode")

    def offer(self, frame: VideoFrame, pts: int) -> None:
        """Offer a source frame stamped ``pts`` (ticks of the 90 kHz hub clock)."""
        if not self.fanout:
            # Nobody watches this layer (and it is not recorded): spend nothing on it.
            # The encoder's references go stale meanwhile, so it restarts on a keyframe.
            self._resume_with_keyframe = True
            return
        if not self._gate.accept(pts / VIDEO_CLOCK_RATE):
            return
        self.frames_offered += 1
        if self._waiting is not None:
            self.frames_dropped_busy += 1
        self._waiting = (frame, pts)
        self._wake.set()

    def request_keyframe(self) -> None:
        self.keyframe_scheduler.request()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._waiting is None:
                continue
            frame, pts = self._waiting
            self._waiting = None
            force_keyframe = self.keyframe_scheduler.take(force=self._resume_with_keyframe)
            self._resume_with_keyframe = False
            try:
                packets = await self._loop.run_in_executor(self._executor, self._encode, frame, pts, force_keyframe)
            except (av.FFmpegError, ValueError):
                # One bad frame (odd size, corrupt data) must not end the layer.
                logger.exception("layer %s: encoding a frame failed", self.spec.name)
                continue
            for packet in packets:
                self.frames_encoded += 1
                self.bytes_encoded += packet.size
                if packet.is_keyframe:
                    self.keyframes += 1
                    if not force_keyframe:
                        self.keyframe_scheduler.note_keyframe()
                self.fanout.publish(packet)

    def _open_codec(self) -> av.VideoCodecContext:
        spec = self.spec
        codec = av.CodecContext.create("libvpx", "w")
        assert isinstance(codec, av.VideoCodecContext)
        codec.width = spec.width
        codec.height = spec.height
        codec.pix_fmt = "yuv420p"
        codec.time_base = VIDEO_TIME_BASE
        codec.framerate = Fraction(spec.fps).limit_denominator(1001)
        codec.bit_rate = spec.bit_rate
        # The scheduler makes the periodic keyframes (in seconds, whatever the
        # frame rate); libvpx's own maximum distance is only a backstop.
        codec.gop_size = 1 << 16
        codec.qmin = 2
        codec.qmax = 56
        # One thread per encoder: layers and lessons already run in parallel,
        # and libvpx threading barely helps at these sizes.
        codec.thread_count = 1
        codec.options = _vp8_options(spec)
        return codec

    def _encode(self, frame: VideoFrame, pts: int, force_keyframe: bool) -> list[av.Packet]:
        """Runs in the layer's thread: scale, stamp and encode one frame."""
        if self._codec is None:
            self._codec = self._open_codec()
        picture = fit_picture(frame, self.spec.width, self.spec.height, self._reformatter)
        picture.pts = pts
        picture.time_base = VIDEO_TIME_BASE
        # Decoded frames keep the teacher's pict_type: without NONE, every
        # keyframe of the teacher's stream would force one here (PITFALLS.md).
        picture.pict_type = PictureType.I if force_keyframe else PictureType.NONE
        packets = self._codec.encode(picture)
        for packet in packets:
            packet.time_base = VIDEO_TIME_BASE
        return packets

    async def close(self) -> None:
        self.keyframe_scheduler.cancel()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        # Let a running encode finish in its thread; do not wait for it here.
        self._executor.shutdown(wait=False, cancel_futures=True)
