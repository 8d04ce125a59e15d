"""Recording a lesson as WebM pieces, and turning pieces into one file.

Live side (:class:`PieceRecorder`): the recorder is one more consumer of the
STANDARD layer's VP8 packets and of the shared Opus packets. It muxes a copy
of each packet (``mux()`` rewrites pts in place, and the original is shared
with the viewers' senders) into pieces of about ``piece_seconds``, each
starting on a keyframe with timestamps rebased to 0. Nothing is re-encoded,
and all file work runs in the recorder's own thread. A piece is written as
``piece-NNNNN.webm.part`` and renamed when complete, so after a crash (even
SIGKILL) every ``.webm`` is whole and at most the open piece is incomplete.
Each piece carries the wall-clock time of its first frame in its header
(tag ``JINSHI_STARTED_AT``), so pieces can be joined without any database.

Offline side (plain blocking functions, for a job worker or a thread):
:func:`join_pieces`, :func:`probe_recording`, :func:`make_poster`,
:func:`list_spooled_pieces`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import statistics
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.container

from live.media.audio import opus_codec_settings
from live.media.clock import AUDIO_CLOCK_RATE, AUDIO_TIME_BASE, VIDEO_CLOCK_RATE, VIDEO_TIME_BASE, MediaClock
from live.media.video import LayerSpec

logger = logging.getLogger(__name__)

STARTED_AT_TAG = "JINSHI_STARTED_AT"
PIECE_PATTERN = re.compile(r"^piece-(\d{5,})\.webm(\.part)?$")
# Audio held while waiting for the boundary keyframe, at most (20 ms each).
_MAX_HELD_AUDIO = 150


@dataclass(frozen=True)
class PieceInfo:
    """A finished recording piece on local disk.

    ``started_at`` / ``ended_at``: unix wall-clock times of its first frame and
    of the end of its last frame. ``frames``: video frames in the piece.
    """

    lesson_key: str
    index: int
    path: Path
    started_at: float
    ended_at: float
    frames: int


def piece_path(directory: Path, index: int) -> Path:
    return directory / f"piece-{index:05d}.webm"


def _part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


class _PieceWriter:
    """One WebM piece; every method runs in the recorder's thread."""

    def __init__(self, path: Path, layer: LayerSpec, audio_bit_rate: int, started_at: float) -> None:
        self.path = path
        self._layer = layer
        self._audio_bit_rate = audio_bit_rate
        self._started_at = started_at
        self._container: av.container.OutputContainer | None = None
        self._video: av.stream.Stream | None = None
        self._audio: av.stream.Stream | None = None
        self.failed = False

    def open(self) -> None:
        try:
            # Clusters of at most 1 s: if the process dies, the open piece keeps
            # all but its last second readable.
            container = av.open(
                str(_part_path(self.path)), mode="w", format="webm", options={"cluster_time_limit": "1000"}
            )
            container.metadata[STARTED_AT_TAG] = repr(self._started_at)
            self._video = container.add_mux_stream(
                "vp8",
                rate=Fraction(self._layer.fps).limit_denominator(1001),
                width=self._layer.width,
                height=self._layer.height,
            )
            # A mux-only stream cannot carry Opus' header (OpusHead); an encoder
            # stream configured like the shared encoder writes the same one.
            audio = container.add_stream("libopus", rate=AUDIO_CLOCK_RATE, layout="mono")
            audio.codec_context.bit_rate = self._audio_bit_rate
            audio.codec_context.options = opus_codec_settings()
            self._audio = audio
            container.start_encoding()
            self._container = container
        except (av.FFmpegError, OSError, ValueError):
            logger.exception("recording: cannot open %s", self.path)
            self.failed = True

    def write(self, packet: av.Packet, is_video: bool) -> None:
        if self._container is None or self.failed:
            return
        packet.stream = self._video if is_video else self._audio  # type: ignore[assignment]  # PyAV stubs
        try:
            self._container.mux(packet)
        except (av.FFmpegError, ValueError):
            # One bad packet (non-monotonic timestamp) must not end the piece.
            logger.warning("recording: dropped a packet in %s", self.path.name, exc_info=True)

    def close(self) -> bool:
        """Finish the file and give it its final name; True if it is complete."""
        if self._container is None:
            return False
        part = _part_path(self.path)
        try:
            self._container.close()
            with open(part, "rb+") as handle:
                os.fsync(handle.fileno())
            os.replace(part, self.path)
            directory = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except (av.FFmpegError, OSError):
            logger.exception("recording: cannot finish %s", self.path)
            return False
        finally:
            self._container = None
        return not self.failed


@dataclass
class _OpenPiece:
    index: int
    writer: _PieceWriter
    start_pts: int  # 90 kHz hub ticks of its first (key)frame
    started_at: float
    frames: int = 0
    last_pts: int = 0
    boundary_requested: bool = False
    held_audio: list[av.Packet] = field(default_factory=list)
    last_audio_pts: int | None = None

    @property
    def audio_start_pts(self) -> int:
        return self.start_pts * AUDIO_CLOCK_RATE // VIDEO_CLOCK_RATE


def _copy_packet(packet: av.Packet, base: int, time_base: Fraction) -> av.Packet:
    """A private copy for muxing, with timestamps rebased to the piece start."""
    copy = av.Packet(bytes(packet))
    assert packet.pts is not None
    copy.pts = copy.dts = packet.pts - base
    copy.time_base = time_base
    copy.is_keyframe = packet.is_keyframe
    return copy


def _next_piece_index(directory: Path) -> int:
    # A worker restarted for the same lesson continues the numbering, never overwrites.
    highest = 0
    if directory.is_dir():
        for entry in directory.iterdir():
            match = PIECE_PATTERN.match(entry.name)
            if match:
                highest = max(highest, int(match.group(1)))
    return highest + 1


class _Sink:
    def __init__(self, push: Callable[[av.Packet], None]) -> None:
        self.push = push


class PieceRecorder:
    """Writes one lesson's shared packets into WebM pieces (see module docstring).

    Call :meth:`start_session` when a publisher session starts (the first
    piece then starts on the next keyframe, which it requests),
    :meth:`end_session` when it ends, :meth:`close` at the end of the lesson.
    """

    def __init__(
        self,
        lesson_key: str,
        directory: Path,
        *,
        layer: LayerSpec,
        piece_seconds: float,
        audio_bit_rate: int,
        clock: MediaClock,
        request_keyframe: Callable[[], None],
        on_piece: Callable[[PieceInfo], Awaitable[None]] | None,
        thread_name: str,
    ) -> None:
        self.lesson_key = lesson_key
        self.directory = directory
        self.pieces_written = 0
        self.frames_written = 0
        self._layer = layer
        self._piece_ticks = round(piece_seconds * VIDEO_CLOCK_RATE)
        self._audio_bit_rate = audio_bit_rate
        self._clock = clock
        self._request_keyframe = request_keyframe
        self._on_piece = on_piece
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._next_index: int | None = None
        self._armed = False
        self._piece: _OpenPiece | None = None
        self._reports: asyncio.Queue[tuple[asyncio.Future[bool], PieceInfo] | None] = asyncio.Queue()
        self._reporter = self._loop.create_task(self._report_pieces(), name=f"{thread_name}-report")
        self.video_sink = _Sink(self._push_video)
        self.audio_sink = _Sink(self._push_audio)

    @property
    def recording(self) -> bool:
        return self._piece is not None

    def start_session(self) -> None:
        """A publisher session starts: close any open piece, start anew on a keyframe."""
        self._finish_piece()
        self._armed = True
        self._request_keyframe()

    def end_session(self) -> None:
        self._finish_piece()
        self._armed = False

    async def close(self) -> None:
        """Finish the open piece and wait until every piece has been reported."""
        self.end_session()
        self._reports.put_nowait(None)
        await self._reporter
        self._executor.shutdown(wait=True)

    # -- packets (event loop) -------------------------------------------------

    def _push_video(self, packet: av.Packet) -> None:
        if packet.pts is None:
            return
        piece = self._piece
        if piece is None:
            if not (self._armed and packet.is_keyframe):
                return
            piece = self._open_piece(packet.pts)
        else:
            elapsed = packet.pts - piece.start_pts
            # Rotate on the first keyframe near the boundary (a viewer's forced
            # keyframe shortly before it serves as well as ours).
            if packet.is_keyframe and elapsed >= self._piece_ticks * 0.9:
                held = piece.held_audio
                piece.held_audio = []
                for audio in held:
                    if audio.pts is not None and audio.pts * VIDEO_CLOCK_RATE < packet.pts * AUDIO_CLOCK_RATE:
                        self._write_audio(piece, audio)
                self._finish_piece()
                piece = self._open_piece(packet.pts)
                for audio in held:
                    self._push_audio(audio)
            elif elapsed >= self._piece_ticks and not piece.boundary_requested:
                piece.boundary_requested = True
                self._request_keyframe()
        piece.frames += 1
        piece.last_pts = packet.pts
        self.frames_written += 1
        self._submit(piece.writer.write, _copy_packet(packet, piece.start_pts, VIDEO_TIME_BASE), True)

    def _push_audio(self, packet: av.Packet) -> None:
        piece = self._piece
        if piece is None or packet.pts is None:
            return
        if piece.boundary_requested:
            # Which piece this belongs to is known once the boundary keyframe is here.
            piece.held_audio.append(packet)
            if len(piece.held_audio) > _MAX_HELD_AUDIO:
                held, piece.held_audio = piece.held_audio, []
                for audio in held:
                    self._write_audio(piece, audio)
            return
        self._write_audio(piece, packet)

    def _write_audio(self, piece: _OpenPiece, packet: av.Packet) -> None:
        assert packet.pts is not None
        if packet.pts < piece.audio_start_pts:
            return  # before this piece's first frame
        if piece.last_audio_pts is not None and packet.pts <= piece.last_audio_pts:
            return  # the muxer refuses timestamps that do not increase
        piece.last_audio_pts = packet.pts
        self._submit(piece.writer.write, _copy_packet(packet, piece.audio_start_pts, AUDIO_TIME_BASE), False)

    # -- pieces ---------------------------------------------------------------

    def _submit(self, function: Callable[..., object], *args: object) -> asyncio.Future[object]:
        return self._loop.run_in_executor(self._executor, function, *args)

    def _open_piece(self, start_pts: int) -> _OpenPiece:
        if self._next_index is None:
            # First piece of this hub: scan the directory once (in the loop, but
            # only once per lesson and before any media flows to viewers of it).
            self.directory.mkdir(parents=True, exist_ok=True)
            self._next_index = _next_piece_index(self.directory)
        index = self._next_index
        self._next_index += 1
        started_at = self._clock.wall_time(start_pts / VIDEO_CLOCK_RATE)
        writer = _PieceWriter(piece_path(self.directory, index), self._layer, self._audio_bit_rate, started_at)
        self._submit(writer.open)
        self._piece = _OpenPiece(index=index, writer=writer, start_pts=start_pts, started_at=started_at)
        return self._piece

    def _finish_piece(self) -> None:
        piece = self._piece
        if piece is None:
            return
        self._piece = None
        for audio in piece.held_audio:
            self._write_audio(piece, audio)
        frame_seconds = 1.0 / self._layer.fps
        info = PieceInfo(
            lesson_key=self.lesson_key,
            index=piece.index,
            path=piece.writer.path,
            started_at=piece.started_at,
            ended_at=self._clock.wall_time(piece.last_pts / VIDEO_CLOCK_RATE) + frame_seconds,
            frames=piece.frames,
        )
        done = self._loop.run_in_executor(self._executor, piece.writer.close)
        self._reports.put_nowait((done, info))

    async def _report_pieces(self) -> None:
        # One at a time and in order: the callback may upload or record each piece.
        while True:
            item = await self._reports.get()
            if item is None:
                return
            done, info = item
            if not await done:
                logger.error("recording: piece %s is incomplete; not reported", info.path)
                continue
            self.pieces_written += 1
            if self._on_piece is not None:
                try:
                    await self._on_piece(info)
                except Exception:
                    logger.exception("recording: on_piece failed for %s", info.path)


# -- offline: pieces on disk --------------------------------------------------


def read_piece_started_at(path: Path) -> float | None:
    """The wall-clock start written in a piece's header, or None if unreadable."""
    try:
        with av.open(str(path)) as container:
            value = container.metadata.get(STARTED_AT_TAG)
    except (av.FFmpegError, OSError):
        return None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def list_spooled_pieces(directory: Path, *, include_partial: bool = False) -> list[tuple[Path, float]]:
    """Pieces found in a lesson's spool directory, as ``(path, started_at)`` in order.

    For recovery after a worker died: complete pieces are ``.webm``; with
    ``include_partial`` the unfinished ``.webm.part`` is included too (joining
    keeps what can be read of it).
    """
    found: list[tuple[Path, float]] = []
    if not directory.is_dir():
        return found
    for entry in sorted(directory.iterdir()):
        match = PIECE_PATTERN.match(entry.name)
        if not match or (match.group(2) and not include_partial):
            continue
        started_at = read_piece_started_at(entry)
        if started_at is not None:
            found.append((entry, started_at))
    found.sort(key=lambda item: item[1])
    return found


@dataclass(frozen=True)
class JoinResult:
    """What :func:`join_pieces` made.

    ``gaps``: ``(start_s, length_s)`` on the joined timeline for every hole
    longer than the threshold (a teacher reload, a lost piece). ``skipped``:
    pieces that contributed nothing, with the reason; ``damaged``: pieces
    that were cut short (what could be read was kept).
    """

    out_path: Path
    pieces_used: int
    skipped: tuple[tuple[Path, str], ...]
    damaged: tuple[Path, ...]
    gaps: tuple[tuple[float, float], ...]
    duration_s: float
    video_packets: int
    audio_packets: int


@dataclass
class _OutputTrack:
    stream: av.stream.Stream
    last_dts: int | None = None  # in the output stream's time base
    packets: int = 0


def _piece_entry(entry: PieceInfo | tuple[Path | str, float]) -> tuple[Path, float]:
    if isinstance(entry, PieceInfo):
        return entry.path, entry.started_at
    path, started_at = entry
    return Path(path), float(started_at)


def _open_piece_streams(
    path: Path,
) -> tuple[av.container.InputContainer | None, av.stream.Stream | None, av.stream.Stream | None, str | None]:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as error:
        return None, None, None, f"cannot open: {error}"
    video = container.streams.video[0] if container.streams.video else None
    audio = container.streams.audio[0] if container.streams.audio else None
    if video is None and audio is None:
        container.close()
        return None, None, None, "no audio or video stream"
    return container, video, audio, None


def join_pieces(
    pieces: Sequence[PieceInfo | tuple[Path | str, float]], out_path: Path, *, min_gap_s: float = 1.0
) -> JoinResult:
    """Remux pieces (VP8 + Opus WebM) into one WebM at ``out_path``, without re-encoding.

    Each piece is placed by its wall-clock start relative to the first
    contributing piece, so a pause between pieces (a teacher reload) stays a
    pause; the result starts at 0 and its timestamps only increase. A corrupt
    or truncated piece contributes what can be demuxed; one that cannot be
    opened is skipped. Blocking: run it in a worker or a thread. Raises
    ``ValueError`` when no piece has any media.
    """
    entries = sorted((_piece_entry(entry) for entry in pieces), key=lambda item: item[1])
    skipped: list[tuple[Path, str]] = []
    damaged: list[Path] = []

    # Output streams copy their parameters from the first pieces that have each kind.
    video_template: av.stream.Stream | None = None
    audio_template: av.stream.Stream | None = None
    readable: list[tuple[Path, float]] = []
    templates: list[av.container.InputContainer] = []  # open until the output streams are made
    out_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = out_path.with_name(out_path.name + ".part")
    tracks: dict[str, _OutputTrack] = {}
    try:
        for path, started_at in entries:
            container, video, audio, problem = _open_piece_streams(path)
            if container is None:
                skipped.append((path, problem or "unreadable"))
                continue
            readable.append((path, started_at))
            needed = (video_template is None and video is not None) or (audio_template is None and audio is not None)
            if not needed:
                container.close()
                continue
            templates.append(container)
            video_template = video_template or video
            audio_template = audio_template or audio
        if video_template is None and audio_template is None:
            raise ValueError("no readable piece to join")
        output = av.open(str(temporary), mode="w", format="webm")
        if video_template is not None:
            tracks["video"] = _OutputTrack(output.add_stream_from_template(video_template, opaque=True))
        if audio_template is not None:
            tracks["audio"] = _OutputTrack(output.add_stream_from_template(audio_template, opaque=True))
    finally:
        for container in templates:
            container.close()

    origin: float | None = None  # wall-clock time that becomes 0 in the output
    gaps: list[tuple[float, float]] = []
    timeline_end: float | None = None  # seconds, end of the media written so far
    used = 0
    try:
        for path, started_at in readable:
            contributed, cut_short, piece_start, piece_end = _copy_piece(path, started_at, origin, output, tracks)
            if cut_short:
                damaged.append(path)
            if not contributed:
                skipped.append((path, "no readable packets"))
                continue
            used += 1
            if origin is None:
                origin = started_at
            assert piece_start is not None and piece_end is not None
            if timeline_end is not None and piece_start - timeline_end > min_gap_s:
                gaps.append((timeline_end, piece_start - timeline_end))
            timeline_end = piece_end if timeline_end is None else max(timeline_end, piece_end)
    finally:
        output.close()
    if used == 0:
        temporary.unlink(missing_ok=True)
        raise ValueError("no piece had readable packets")
    os.replace(temporary, out_path)
    return JoinResult(
        out_path=out_path,
        pieces_used=used,
        skipped=tuple(skipped),
        damaged=tuple(damaged),
        gaps=tuple(gaps),
        duration_s=timeline_end or 0.0,
        video_packets=tracks["video"].packets if "video" in tracks else 0,
        audio_packets=tracks["audio"].packets if "audio" in tracks else 0,
    )


def _copy_piece(
    path: Path,
    started_at: float,
    origin: float | None,
    output: av.container.OutputContainer,
    tracks: dict[str, _OutputTrack],
) -> tuple[bool, bool, float | None, float | None]:
    """Copy one piece's packets; returns (contributed, cut_short, start_s, end_s)."""
    offset_s = 0.0 if origin is None else started_at - origin
    contributed = cut_short = False
    start_s: float | None = None
    end_s: float | None = None
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError):
        return False, True, None, None
    with container:
        streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1]) if s.type in tracks]
        try:
            for packet in container.demux(*streams):
                if packet.size == 0 or packet.pts is None or packet.is_corrupt or packet.time_base is None:
                    continue
                track = tracks[packet.stream.type]
                time_base = packet.time_base
                offset = round(offset_s / time_base)
                pts = packet.pts + offset
                # Output time base (WebM: 1 ms) equals the pieces'; compare in it.
                out_tb = track.stream.time_base or time_base
                dts = round(pts * time_base / out_tb)
                if track.last_dts is not None and dts <= track.last_dts:
                    if packet.stream.type == "audio":
                        continue  # overlapping sound; dropping keeps A/V in place
                    dts = track.last_dts + 1
                    pts = round(dts * out_tb / time_base)
                track.last_dts = dts
                packet.pts = packet.dts = pts
                packet_start = float(pts * time_base)
                packet_end = packet_start + float((packet.duration or 0) * time_base)
                start_s = packet_start if start_s is None else min(start_s, packet_start)
                end_s = packet_end if end_s is None else max(end_s, packet_end)
                packet.stream = track.stream
                output.mux(packet)
                track.packets += 1
                contributed = True
        except (av.FFmpegError, OSError, ValueError):
            # Truncated (a killed writer) or damaged: keep what came before.
            cut_short = True
    return contributed, cut_short, start_s, end_s


@dataclass(frozen=True)
class Probe:
    """What a recording really contains, measured by decoding its video."""

    frames: int
    duration_s: float
    width: int
    height: int
    has_audio: bool


def probe_recording(path: Path) -> Probe:
    """Decode the video of ``path`` to count frames and measure its duration.

    WebM headers carry no duration or frame count, and a file that exists can
    still hold zero frames (PITFALLS.md), so this decodes. Duration: from the
    first frame's start to the last frame's end (the typical frame interval
    is added for the last frame). Blocking.
    """
    frames = 0
    width = height = 0
    times: list[float] = []
    audio_packets = 0
    with av.open(str(path)) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        streams = [s for s in (video, audio) if s is not None]
        # Frames decoded packet by packet may lack a time base: use the stream's.
        time_base = video.time_base if video is not None else None
        if video is not None:
            video.thread_type = "AUTO"
        try:
            for packet in container.demux(*streams):
                if packet.size == 0:
                    continue
                if packet.stream.type == "audio":
                    audio_packets += 1
                    continue
                try:
                    decoded = packet.decode()
                except av.FFmpegError:
                    continue  # a damaged frame; count what decodes
                for frame in decoded:
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    frames += 1
                    width, height = frame.width, frame.height
                    if frame.pts is not None and time_base is not None:
                        times.append(float(frame.pts * time_base))
            if video is not None:
                for frame in video.decode(None):
                    frames += 1
                    if frame.pts is not None and time_base is not None:
                        times.append(float(frame.pts * time_base))
        except (av.FFmpegError, ValueError):
            pass  # truncated file: keep the count so far
    duration = 0.0
    if times:
        times.sort()
        intervals = [b - a for a, b in itertools.pairwise(times) if b > a]
        typical = statistics.median(intervals) if intervals else 0.0
        duration = times[-1] - times[0] + typical
    return Probe(frames=frames, duration_s=duration, width=width, height=height, has_audio=audio_packets > 0)


def make_poster(path: Path, out_jpeg_path: Path, at_s: float = 1.0, *, quality: int = 85) -> None:
    """Write a JPEG of the frame shown at ``at_s`` seconds (or the last frame before it).

    Falls back to the last decodable frame when the recording is shorter.
    Raises ``ValueError`` if no video frame decodes. Blocking.
    """
    chosen: av.VideoFrame | None = None
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video")
        video = container.streams.video[0]
        if at_s > 0 and video.time_base is not None:
            try:
                container.seek(int(at_s / video.time_base), stream=video, backward=True)
            except av.FFmpegError:
                container.seek(0)  # no index (a truncated piece): decode from the start
        try:
            for frame in container.decode(video):
                if chosen is not None and frame.time is not None and frame.time > at_s:
                    break
                chosen = frame
        except av.FFmpegError:
            pass
    if chosen is None:
        raise ValueError(f"no decodable video frame in {path}")
    out_jpeg_path.parent.mkdir(parents=True, exist_ok=True)
    chosen.to_image().save(out_jpeg_path, format="JPEG", quality=quality)
