"""The lesson's one Opus encode, shared by every viewer and the recorder.

The teacher's audio arrives decoded (aiortc decodes whatever the browser
sent); it is re-chunked into 20 ms mono frames on the hub clock and encoded
once with libopus (in-band FEC on, for lossy classroom links), off the event
loop. Short holes in the input (lost packets) are filled with silence so the
encoder's timeline stays continuous; long ones (a teacher reload) restart it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
from av.audio.frame import AudioFrame

from live.media.clock import AUDIO_CLOCK_RATE, AUDIO_TIME_BASE
from live.media.fanout import PacketFanout

logger = logging.getLogger(__name__)

SAMPLES_PER_PACKET = 960  # 20 ms at 48 kHz: what browsers send and expect
# Holes up to this long are filled with silence; longer ones restart the timeline.
_MAX_FILLED_GAP = AUDIO_CLOCK_RATE // 5
# Input frames waiting for the encoder thread; beyond this the oldest are dropped.
_MAX_WAITING_FRAMES = 50


def opus_codec_settings() -> dict[str, str]:
    """libopus options, shared with the recorder's stream so its OpusHead matches."""
    return {
        # What Chromium uses for microphones: best speech quality at low rates.
        "application": "voip",
        "frame_duration": "20",
        # In-band FEC: a lost packet can be rebuilt from the next one. libopus
        # only spends bits on it when told to expect loss.
        "fec": "1",
        "packet_loss": "10",
    }


def make_opus_encoder(bit_rate: int) -> av.AudioCodecContext:
    codec = av.CodecContext.create("libopus", "w")
    assert isinstance(codec, av.AudioCodecContext)
    codec.sample_rate = AUDIO_CLOCK_RATE
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = bit_rate
    codec.time_base = AUDIO_TIME_BASE
    codec.options = opus_codec_settings()
    return codec


class OpusEncoderPipeline:
    """Re-chunk, encode once, fan out Opus packets (pts on the 48 kHz hub clock)."""

    def __init__(self, *, bit_rate: int, thread_name: str) -> None:
        self.fanout = PacketFanout()
        self.packets_encoded = 0
        self.frames_dropped = 0
        self._bit_rate = bit_rate
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._waiting: collections.deque[tuple[AudioFrame, int]] = collections.deque()
        self._wake = asyncio.Event()
        # Encoder-thread state.
        self._codec: av.AudioCodecContext | None = None
        self._resampler: av.AudioResampler | None = None
        self._buffer: np.ndarray = np.zeros(0, np.int16)
        self._buffer_pts: int | None = None
        self._task = self._loop.create_task(self._run(), name=f"{thread_name}-encode")

    def offer(self, frame: AudioFrame, pts: int) -> None:
        """Offer a decoded frame whose first sample is at ``pts`` (48 kHz hub ticks)."""
        if len(self._waiting) >= _MAX_WAITING_FRAMES:
            self._waiting.popleft()
            self.frames_dropped += 1
        self._waiting.append((frame, pts))
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch = list(self._waiting)
                self._waiting.clear()
                try:
                    packets = await self._loop.run_in_executor(self._executor, self._encode_batch, batch)
                except (av.FFmpegError, ValueError):
                    logger.exception("audio: encoding failed; restarting the encoder")
                    self._codec = None
                    continue
                for packet in packets:
                    self.packets_encoded += 1
                    self.fanout.publish(packet)

    def _encode_batch(self, batch: list[tuple[AudioFrame, int]]) -> list[av.Packet]:
        """Runs in the audio thread."""
        packets: list[av.Packet] = []
        for frame, pts in batch:
            packets.extend(self._encode_one(frame, pts))
        return packets

    def _encode_one(self, frame: AudioFrame, pts: int) -> list[av.Packet]:
        if self._codec is None:
            self._codec = make_opus_encoder(self._bit_rate)
            self._codec.open()
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_CLOCK_RATE)
        # The resampler checks pts continuity; we keep time ourselves.
        frame.pts = None
        samples = [chunk.to_ndarray().reshape(-1) for chunk in self._resampler.resample(frame)]
        if not samples:
            return []
        mono: np.ndarray = np.concatenate(samples) if len(samples) > 1 else samples[0]

        expected = None if self._buffer_pts is None else self._buffer_pts + len(self._buffer)
        if expected is None or pts - expected > _MAX_FILLED_GAP:
            # First frame, or a hole the encoder should not bridge (a teacher reload):
            # start over at the new time, which is later than anything sent so far.
            self._buffer = mono
            self._buffer_pts = pts if expected is None else max(pts, expected)
        elif pts > expected + SAMPLES_PER_PACKET // 20:
            silence = np.zeros(pts - expected, np.int16)  # lost packets: keep the timeline
            self._buffer = np.concatenate((self._buffer, silence, mono))
        else:
            # On time, or early (a backlog after a stall): continue seamlessly. Never
            # step back: every receiver and the recorder need increasing timestamps.
            self._buffer = np.concatenate((self._buffer, mono))

        packets: list[av.Packet] = []
        while len(self._buffer) >= SAMPLES_PER_PACKET and self._buffer_pts is not None:
            chunk = self._buffer[:SAMPLES_PER_PACKET]
            self._buffer = self._buffer[SAMPLES_PER_PACKET:]
            out = AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            out.sample_rate = AUDIO_CLOCK_RATE
            out.pts = self._buffer_pts
            out.time_base = AUDIO_TIME_BASE
            self._buffer_pts += SAMPLES_PER_PACKET
            for packet in self._codec.encode(out):
                packet.time_base = AUDIO_TIME_BASE
                packets.append(packet)
        return packets

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._executor.shutdown(wait=False, cancel_futures=True)
