"""Real aiortc peers for driving a media hub in tests and benchmarks.

:class:`Publisher` is a teacher sending a real clip; :class:`Viewer` is a
classroom receiving, decoding and keeping a few facts about what it got.
Both talk to anything with the hub's signalling shape (an offer SDP in, an
answer SDP out), so the same peers serve in-process tests and the
benchmark's signalling client.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

from tests.support.media import ClipVideoTrack, looping_clip_tracks

Signal = Callable[[str], Awaitable[str]]  # offer SDP -> answer SDP

_HOST_CANDIDATE = re.compile(r"^(a=candidate:\S+ \d+ \S+ \d+ )(\S+)( \d+ typ host.*)$", re.MULTILINE)


def mdns_candidates(sdp: str) -> str:
    """Hide host candidate addresses behind ``<uuid>.local`` names, as Chromium does.

    A page without camera permission sends exactly this kind of offer.
    """
    return _HOST_CANDIDATE.sub(lambda m: f"{m.group(1)}{uuid.uuid4()}.local{m.group(3)}", sdp)


async def wait_until(predicate: Callable[[], bool], *, within: float, what: str, interval: float = 0.02) -> float:
    """Poll ``predicate`` until true; return the seconds it took. Fails the test on timeout."""
    start = time.monotonic()
    deadline = start + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within:.1f} s waiting for {what}")
        await asyncio.sleep(interval)
    return time.monotonic() - start


def new_peer_connection() -> RTCPeerConnection:
    # No STUN: host candidates on this machine's interface are enough, and
    # aiortc's default (Google's STUN) must never be contacted from tests.
    return RTCPeerConnection(RTCConfiguration(iceServers=[]))


class Publisher:
    """A teacher: publishes the clip (video + audio) in real time."""

    def __init__(self, *, width: int = 640, height: int = 360) -> None:
        self.video, self.audio = looping_clip_tracks(width=width, height=height)
        self.pc = new_peer_connection()

    @property
    def video_track(self) -> ClipVideoTrack:
        return self.video

    async def connect(self, signal: Signal) -> None:
        self.pc.addTrack(self.video)
        self.pc.addTrack(self.audio)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        answer = await signal(self.pc.localDescription.sdp)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    async def close(self) -> None:
        await self.pc.close()


@dataclass
class Reception:
    """What one viewer received, as the viewer saw it (decoded)."""

    video_frames: int = 0
    audio_frames: int = 0
    first_video_at: float | None = None  # time.monotonic()
    last_video_at: float | None = None
    sizes: list[tuple[float, int, int]] = field(default_factory=list)  # size changes: (at, width, height)
    sample: np.ndarray | None = None  # luma of one frame after the first second


class Viewer:
    """A classroom: receives the lesson and decodes it (aiortc's own decoders)."""

    def __init__(self, *, mdns: bool = False) -> None:
        self.pc = new_peer_connection()
        self.mdns = mdns
        self.reception = Reception()
        self.joined_at: float | None = None
        self._tasks: list[asyncio.Task[None]] = []

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            self._tasks.append(asyncio.ensure_future(self._receive(track)))

    async def connect(self, signal: Signal) -> None:
        """Offer to receive audio and video; ``joined_at`` is taken before the offer."""
        self.joined_at = time.monotonic()
        self.pc.addTransceiver("video", direction="recvonly")
        self.pc.addTransceiver("audio", direction="recvonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        assert self.pc.localDescription is not None
        offer = self.pc.localDescription.sdp
        if self.mdns:
            offer = mdns_candidates(offer)
        answer = await signal(offer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))

    @property
    def join_to_first_frame(self) -> float | None:
        first = self.reception.first_video_at
        return None if first is None or self.joined_at is None else first - self.joined_at

    @property
    def current_size(self) -> tuple[int, int] | None:
        sizes = self.reception.sizes
        return (sizes[-1][1], sizes[-1][2]) if sizes else None

    async def _receive(self, track: MediaStreamTrack) -> None:
        reception = self.reception
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                if isinstance(frame, VideoFrame):
                    reception.video_frames += 1
                    reception.last_video_at = now
                    if reception.first_video_at is None:
                        reception.first_video_at = now
                    if not reception.sizes or reception.sizes[-1][1:] != (frame.width, frame.height):
                        reception.sizes.append((now, frame.width, frame.height))
                    if reception.sample is None and now - reception.first_video_at > 1.0:
                        reception.sample = frame.to_ndarray(format="gray")
                elif isinstance(frame, AudioFrame):
                    reception.audio_frames += 1
        except MediaStreamError:
            return

    async def close(self) -> None:
        await self.pc.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
