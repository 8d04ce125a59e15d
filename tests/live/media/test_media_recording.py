"""Recording: pieces written live from the shared packets, then joined, probed and postered."""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from live.media import (
    LessonHub,
    MediaConfig,
    PieceInfo,
    join_pieces,
    list_spooled_pieces,
    make_poster,
    probe_recording,
)
from tests.support.rtc import Publisher, wait_until

from .conftest import HubFactory, Peers

FPS = 25
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Recorded:
    pieces: list[PieceInfo]
    publish_seconds: float  # from the first frame reaching the hub to the end of the lesson
    spool: Path


def frames_encoded(hub: LessonHub) -> int:
    encoded = hub.stats()["frames_encoded"]
    assert isinstance(encoded, dict)
    return int(encoded.get("standard", 0))


async def record_lesson(spool: Path, seconds: float) -> Recorded:
    pieces: list[PieceInfo] = []

    async def on_piece(info: PieceInfo) -> None:
        pieces.append(info)

    hub = LessonHub("recorded", spool_dir=spool, config=MediaConfig(piece_seconds=5.0), on_piece=on_piece)
    publisher = Publisher()
    try:
        await publisher.connect(lambda sdp: hub.publish("teacher", sdp))
        await wait_until(lambda: frames_encoded(hub) > 0, within=5, what="the first frame")
        started = time.monotonic()
        # The lesson lasts as long as it takes the teacher to send `seconds` of video.
        await wait_until(lambda: frames_encoded(hub) >= seconds * FPS, within=seconds + 5, what=f"{seconds} s of video")
        publish_seconds = time.monotonic() - started
    finally:
        await hub.close()
        await publisher.close()
    return Recorded(pieces, publish_seconds, spool / "recorded")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """One ~12 s lesson recorded in 5 s pieces, shared by the tests that read it."""
    return asyncio.run(record_lesson(tmp_path_factory.mktemp("spool"), 12.0))


def first_video_packet(path: Path) -> av.Packet:
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            if packet.size:
                return packet
    raise AssertionError(f"{path} has no video packet")


@pytest.mark.timeout(60)
def test_the_lesson_is_recorded_in_complete_pieces_that_each_start_on_a_keyframe(recorded: Recorded) -> None:
    pieces = recorded.pieces
    assert [piece.index for piece in pieces] == list(range(1, len(pieces) + 1))
    assert len(pieces) == 3  # 5 s + 5 s + ~2 s
    assert not list(recorded.spool.glob("*.part"))
    for piece in pieces:
        assert piece.path.parent == recorded.spool and piece.path.name == f"piece-{piece.index:05d}.webm"
        probe = probe_recording(piece.path)
        assert probe.frames == piece.frames
        assert (probe.width, probe.height) == (640, 360) and probe.has_audio
        assert probe.duration_s == pytest.approx(piece.ended_at - piece.started_at, abs=0.1)
        assert first_video_packet(piece.path).is_keyframe
    for earlier, later in itertools.pairwise(pieces):
        # Pieces follow each other without a hole: the boundary frame starts the next one.
        assert later.started_at - earlier.ended_at == pytest.approx(0.0, abs=0.05)
    assert pieces[0].ended_at - pieces[0].started_at == pytest.approx(5.0, abs=0.6)
    # The start times are in the files too, for recovery without the database.
    spooled = list_spooled_pieces(recorded.spool)
    assert [path for path, _ in spooled] == [piece.path for piece in pieces]
    assert [start for _, start in spooled] == pytest.approx([piece.started_at for piece in pieces], abs=1e-3)


@pytest.mark.timeout(60)
def test_joined_pieces_play_as_one_recording_of_the_whole_lesson(recorded: Recorded, tmp_path: Path) -> None:
    out = tmp_path / "lesson.webm"
    result = join_pieces(recorded.pieces, out)
    probe = probe_recording(out)

    assert result.pieces_used == 3 and result.skipped == () and result.damaged == ()
    assert result.gaps == ()
    assert probe.frames >= 0.9 * FPS * recorded.publish_seconds
    assert abs(probe.duration_s - recorded.publish_seconds) <= 1.0
    assert (probe.width, probe.height) == (640, 360)
    assert probe.has_audio
    assert result.video_packets == probe.frames
    assert result.audio_packets >= 0.9 * 50 * recorded.publish_seconds  # 20 ms Opus packets

    poster = tmp_path / "poster.jpg"
    make_poster(out, poster, at_s=2.0)
    with Image.open(poster) as image:
        assert image.format == "JPEG" and image.size == (640, 360)
        assert float(np.std(np.asarray(image.convert("L")))) > 20.0


@pytest.mark.timeout(60)
def test_a_truncated_or_garbage_piece_does_not_stop_the_join(recorded: Recorded, tmp_path: Path) -> None:
    pieces = []
    for piece in recorded.pieces:
        copy = tmp_path / piece.path.name
        shutil.copyfile(piece.path, copy)
        pieces.append((copy, piece.started_at))
    middle = pieces[1][0]
    middle.write_bytes(middle.read_bytes()[: middle.stat().st_size // 2])  # the writer died mid-file
    garbage = tmp_path / "piece-00009.webm"
    garbage.write_bytes(os.urandom(20_000))
    pieces.append((garbage, recorded.pieces[-1].ended_at + 10))

    out = tmp_path / "lesson.webm"
    result = join_pieces(pieces, out)
    probe = probe_recording(out)

    whole = sum(piece.frames for piece in recorded.pieces)
    cut = recorded.pieces[1].frames
    assert [path for path, _ in result.skipped] == [garbage]
    assert result.pieces_used == 3
    # Most of the cut piece's first half survived; nothing else was lost.
    assert whole - cut + 0.3 * cut <= probe.frames < whole
    assert probe.duration_s == pytest.approx(recorded.pieces[-1].ended_at - recorded.pieces[0].started_at, abs=0.2)


@pytest.mark.asyncio
@pytest.mark.timeout(40)
async def test_a_teacher_reload_leaves_a_reported_gap_in_the_joined_recording(
    make_hub: HubFactory, peers: Peers, spool_dir: Path, tmp_path: Path
) -> None:
    pieces: list[PieceInfo] = []

    async def on_piece(info: PieceInfo) -> None:
        pieces.append(info)

    hub = make_hub("reloaded", on_piece=on_piece)
    first = await peers.publish(hub)
    await wait_until(lambda: frames_encoded(hub) >= 3 * FPS, within=6, what="3 s of video")
    await first.close()
    await wait_until(lambda: hub.stats()["recording"] is False, within=5, what="the recording to pause")
    paused_at = time.monotonic()
    # The teacher is away for ~2 s (nothing may be recorded meanwhile).
    while time.monotonic() - paused_at < 2.0:
        assert hub.stats()["recording"] is False
        await asyncio.sleep(0.05)
    await peers.publish(hub)
    resumed = frames_encoded(hub)
    await wait_until(lambda: frames_encoded(hub) >= resumed + 3 * FPS, within=6, what="3 s more video")
    await hub.close()

    result = join_pieces(pieces, tmp_path / "lesson.webm")
    probe = probe_recording(tmp_path / "lesson.webm")
    assert len(result.gaps) == 1
    gap_start, gap_length = result.gaps[0]
    assert gap_start == pytest.approx(3.0, abs=0.5)
    assert 1.9 <= gap_length <= 3.0
    # The gap stays a gap: the file is as long as the lesson, pause included.
    assert probe.duration_s == pytest.approx(6.0 + gap_length, abs=0.6)
    assert probe.frames >= 0.9 * 6 * FPS


@pytest.mark.timeout(60)
def test_a_killed_worker_leaves_every_finished_piece_complete(tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.recording_child", str(tmp_path), "1.0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        finished = 0
        deadline = time.monotonic() + 30
        while finished < 2 and time.monotonic() < deadline:
            line = child.stdout.readline()
            assert line, "the recording child exited early"
            finished += line.startswith("piece ")
        assert finished == 2
        time.sleep(0.5)  # kill it in the middle of the third piece
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)

    lesson_dir = tmp_path / "killed"
    complete = list_spooled_pieces(lesson_dir)
    assert len(complete) >= 2
    for path, _ in complete:
        probe = probe_recording(path)
        assert probe.frames == pytest.approx(FPS, abs=3)  # a whole 1 s piece
    # The open piece is at most a loss; salvaging it must not break the join.
    everything = list_spooled_pieces(lesson_dir, include_partial=True)
    result = join_pieces(everything, tmp_path / "salvaged.webm")
    assert result.pieces_used >= len(complete)
    assert probe_recording(tmp_path / "salvaged.webm").frames >= len(complete) * (FPS - 3)
