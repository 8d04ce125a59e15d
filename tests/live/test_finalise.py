"""Recording finalisation: real WebM pieces (the sample clip, VP8 + Opus) become one library item."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import av
import pytest
from django.core.files.storage import default_storage

from courseware.models import RecordedClass
from live.finalise import recording_finalise
from live.models import Lesson, RecordingPiece
from outreach.errors import InvalidState
from tests import factories
from tests.conftest import S3Storage

pytest.importorskip("live.media.recording")

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
FPS = 25


def _ended_lesson() -> Lesson:
    return factories.lesson(
        classrooms=[factories.classroom()],
        title="藏语文 · 第三课",
        state=Lesson.State.ENDED,
        started_at=T0,
        ended_at=T0 + dt.timedelta(seconds=7),
        recording_state=Lesson.RecordingState.PENDING,
    )


def _decoded_frames(name: str) -> int:
    with default_storage.open(name, "rb") as handle, av.open(handle) as container:
        return sum(1 for _frame in container.decode(video=0))


def _finalise_and_check(lesson: Lesson, pieces: list[factories.WrittenPiece], names: list[str]) -> RecordedClass:
    item_id = recording_finalise(lesson_id=lesson.pk, wait_seconds=0)

    assert item_id is not None
    item = RecordedClass.objects.get(pk=item_id)
    lesson.refresh_from_db()
    assert lesson.recording_item_id == item.pk
    assert lesson.recording_state == Lesson.RecordingState.READY
    assert item.title == lesson.title
    assert (item.subject_id, item.grade_id, item.teacher_id) == (
        lesson.subject_id,
        lesson.grade_id,
        lesson.teacher_id,
    )
    assert item.recorded_at == T0
    piece_frames = sum(piece.frames for piece in pieces)
    assert abs(item.frame_count - piece_frames) <= 2
    wall_clock = (pieces[-1].ended_at - pieces[0].started_at).total_seconds()
    assert abs(item.duration_s - wall_clock) <= 1.0
    assert (item.width, item.height) == (320, 180)
    assert item.has_audio
    # The stored file itself decodes to the frames the row claims.
    assert default_storage.exists(item.video.name)
    assert abs(_decoded_frames(item.video.name) - item.frame_count) <= 1
    assert item.size_bytes == default_storage.size(item.video.name)
    assert item.poster.name and default_storage.exists(item.poster.name)
    # The pieces are gone, from storage and from the database.
    assert not any(default_storage.exists(name) for name in names)
    assert not RecordingPiece.objects.filter(lesson=lesson).exists()
    return item


def test_finalising_joins_the_pieces_into_one_library_item_on_local_storage(tmp_path: Path) -> None:
    lesson = _ended_lesson()
    pieces = factories.webm_pieces(tmp_path / "spool", started_at=T0, count=2, seconds=3.0, fps=FPS)
    names = factories.recording_pieces(lesson_=lesson, pieces=pieces)
    assert all(default_storage.exists(name) for name in names)

    item = _finalise_and_check(lesson, pieces, names)

    assert item.notes == ""  # no gap between the pieces


@pytest.mark.services
def test_finalising_works_the_same_on_object_storage(tmp_path: Path, s3_storage: S3Storage) -> None:
    lesson = _ended_lesson()
    pieces = factories.webm_pieces(tmp_path / "spool", started_at=T0, count=2, seconds=3.0, fps=FPS)
    names = factories.recording_pieces(lesson_=lesson, pieces=pieces)
    assert len(s3_storage.keys()) == 2

    item = _finalise_and_check(lesson, pieces, names)

    assert sorted(s3_storage.keys()) == sorted(f"{s3_storage.prefix}/{n}" for n in (item.video.name, item.poster.name))


def test_finalising_twice_returns_the_same_item_and_creates_nothing(tmp_path: Path) -> None:
    lesson = _ended_lesson()
    pieces = factories.webm_pieces(tmp_path / "spool", started_at=T0, count=2, seconds=3.0, fps=FPS)
    factories.recording_pieces(lesson_=lesson, pieces=pieces)
    first = recording_finalise(lesson_id=lesson.pk, wait_seconds=0)
    files = sorted(p for p in Path(default_storage.location).rglob("*") if p.is_file())

    second = recording_finalise(lesson_id=lesson.pk, wait_seconds=0)

    assert second == first
    assert RecordedClass.objects.count() == 1
    assert sorted(p for p in Path(default_storage.location).rglob("*") if p.is_file()) == files


def test_a_retry_after_a_run_died_past_linking_the_item_removes_the_leftover_pieces(tmp_path: Path) -> None:
    lesson = _ended_lesson()
    pieces = factories.webm_pieces(tmp_path / "spool", started_at=T0, count=2, seconds=3.0, fps=FPS)
    names = factories.recording_pieces(lesson_=lesson, pieces=pieces)
    first = recording_finalise(lesson_id=lesson.pk, wait_seconds=0)
    # As if the first run had died after linking the item, before deleting the pieces.
    names = factories.recording_pieces(lesson_=lesson, pieces=pieces)
    assert all(default_storage.exists(name) for name in names)

    assert recording_finalise(lesson_id=lesson.pk, wait_seconds=0) == first

    assert RecordingPiece.objects.filter(lesson=lesson).count() == 0
    assert not any(default_storage.exists(name) for name in names)
    assert RecordedClass.objects.count() == 1


def test_a_pause_between_pieces_stays_a_pause_and_is_noted(tmp_path: Path) -> None:
    lesson = _ended_lesson()
    pieces = factories.webm_pieces(tmp_path / "spool", started_at=T0, count=2, seconds=3.0, fps=FPS, gaps=[5.0])
    factories.recording_pieces(lesson_=lesson, pieces=pieces)

    item = RecordedClass.objects.get(pk=recording_finalise(lesson_id=lesson.pk, wait_seconds=0))

    assert abs(item.duration_s - 11.0) <= 1.0  # 3 s + 5 s pause + 3 s
    assert abs(item.frame_count - 150) <= 2
    assert "00:03" in item.notes and "5 秒" in item.notes
    lesson.refresh_from_db()
    assert lesson.recording_notes == item.notes


def test_a_lesson_without_pieces_gets_no_library_item() -> None:
    lesson = _ended_lesson()

    assert recording_finalise(lesson_id=lesson.pk, wait_seconds=0) is None

    lesson.refresh_from_db()
    assert lesson.recording_state == Lesson.RecordingState.NONE
    assert lesson.recording_item_id is None
    assert RecordedClass.objects.count() == 0


def test_a_lesson_that_has_not_ended_is_not_finalised() -> None:
    lesson = factories.lesson(classrooms=[factories.classroom()], state=Lesson.State.LIVE)

    with pytest.raises(InvalidState):
        recording_finalise(lesson_id=lesson.pk, wait_seconds=0)

    assert RecordedClass.objects.count() == 0


def test_unreadable_pieces_mark_the_recording_failed_and_keep_the_pieces(tmp_path: Path) -> None:
    lesson = _ended_lesson()
    garbage = tmp_path / "garbage.webm"
    garbage.write_bytes(b"this is not a webm file" * 100)
    piece = factories.WrittenPiece(path=garbage, started_at=T0, ended_at=T0 + dt.timedelta(seconds=3), frames=75)
    [name] = factories.recording_pieces(lesson_=lesson, pieces=[piece])

    with pytest.raises(ValueError):
        recording_finalise(lesson_id=lesson.pk, wait_seconds=0)

    lesson.refresh_from_db()
    assert lesson.recording_state == Lesson.RecordingState.FAILED
    assert lesson.recording_notes.startswith("录像处理失败")
    assert RecordedClass.objects.count() == 0
    assert default_storage.exists(name)  # kept for a retry or a person to look at
    assert RecordingPiece.objects.filter(lesson=lesson).count() == 1
