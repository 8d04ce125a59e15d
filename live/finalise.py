"""Recording finalisation: join a lesson's pieces into one file and hand it to the library.

Runs in the job worker (see tasks.py). Idempotent: running it again after a crash, or twice, leaves one
library item.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import tempfile
import time
from pathlib import Path

from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from courseware.services import recorded_class_create, recorded_class_delete
from outreach.errors import InvalidState

from .models import Lesson, RecordingPiece
from .selectors import media_worker_is_alive

log = logging.getLogger(__name__)

# How long the job waits for the media worker to hand over the last piece after the lesson ended.
MEDIA_CLOSE_WAIT_SECONDS = 30.0


def _wait_for_media_close(lesson: Lesson, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while time.monotonic() < deadline:
        lesson.refresh_from_db(fields=["media_closed_at", "media_worker_id"])
        if lesson.media_closed_at is not None or not media_worker_is_alive(lesson.media_worker_id):
            return
        time.sleep(0.25)
    log.warning("lesson %s: media worker did not confirm closing; joining what is stored", lesson.pk)


def _describe_gaps(gaps: list[tuple[float, float]]) -> str:
    lines = []
    for start, length in gaps:
        minutes, seconds = divmod(int(start), 60)
        lines.append(f"录像在 {minutes:02d}:{seconds:02d} 处中断约 {length:.0f} 秒（主讲端重新连接）。")
    return "\n".join(lines)


def recording_finalise(*, lesson_id: int, wait_seconds: float = MEDIA_CLOSE_WAIT_SECONDS) -> int | None:
    """Join the lesson's recording pieces into a recorded class. Returns the library item id (or None)."""
    from .media.recording import join_pieces, make_poster, probe_recording

    lesson = Lesson.objects.select_related("subject", "grade", "teacher").get(pk=lesson_id)
    if lesson.recording_item_id is not None:
        # Done before; a run that died after linking the item may have left its pieces behind.
        _delete_pieces(list(RecordingPiece.objects.filter(lesson_id=lesson_id)))
        return lesson.recording_item_id
    if lesson.state != Lesson.State.ENDED:
        raise InvalidState(f"lesson {lesson_id} has not ended")
    _wait_for_media_close(lesson, wait_seconds)
    pieces = list(RecordingPiece.objects.filter(lesson_id=lesson_id).order_by("started_at"))
    if not pieces:
        Lesson.objects.filter(pk=lesson_id).update(
            recording_state=Lesson.RecordingState.NONE, recording_notes="没有录到画面。"
        )
        return None
    try:
        with tempfile.TemporaryDirectory(prefix=f"lesson-{lesson_id}-") as tmp:
            workdir = Path(tmp)
            local: list[tuple[Path, float]] = []
            for number, piece in enumerate(pieces):
                target = workdir / f"piece-{number:05d}.webm"
                with default_storage.open(piece.storage_name, "rb") as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                local.append((target, piece.started_at.timestamp()))
            out = workdir / f"lesson-{lesson_id}.webm"
            joined = join_pieces(local, out)
            probe = probe_recording(out)
            if probe.frames == 0:
                raise InvalidState(f"lesson {lesson_id}: the joined recording has no video frames")
            poster = workdir / "poster.jpg"
            try:
                make_poster(out, poster, at_s=min(2.0, probe.duration_s / 2))
            except Exception:
                log.exception("lesson %s: no poster", lesson_id)
            # Creating the item and linking it to the lesson commit together: a crash between the two
            # cannot leave a library item no lesson points to.
            with transaction.atomic():
                item = recorded_class_create(
                    title=lesson.title,
                    subject=lesson.subject,
                    grade=lesson.grade,
                    teacher=lesson.teacher,
                    video_path=out,
                    poster_path=poster if poster.exists() else None,
                    duration_s=probe.duration_s,
                    frame_count=probe.frames,
                    width=probe.width,
                    height=probe.height,
                    has_audio=probe.has_audio,
                    recorded_at=lesson.started_at,
                    notes=_describe_gaps(list(joined.gaps)),
                )
                claimed = Lesson.objects.filter(pk=lesson_id, recording_item_id__isnull=True).update(
                    recording_item_id=item.pk,
                    recording_state=Lesson.RecordingState.READY,
                    recording_notes=item.notes,
                )
    except Exception as exc:
        Lesson.objects.filter(pk=lesson_id, recording_item_id__isnull=True).update(
            recording_state=Lesson.RecordingState.FAILED, recording_notes=f"录像处理失败：{exc}"[:500]
        )
        raise
    if not claimed:  # another run finished first: keep its item, drop ours
        recorded_class_delete(item_id=item.pk)
        return Lesson.objects.get(pk=lesson_id).recording_item_id
    _delete_pieces(pieces)
    return item.pk


def _delete_pieces(pieces: list[RecordingPiece]) -> None:
    for piece in pieces:
        try:
            default_storage.delete(piece.storage_name)
        except Exception:
            log.exception("could not delete recording piece %s", piece.storage_name)
    RecordingPiece.objects.filter(pk__in=[p.pk for p in pieces]).delete()


def piece_storage_name(*, lesson_id: int, worker_id: str, index: int, started_at: dt.datetime) -> str:
    stamp = timezone.localtime(started_at).strftime("%Y%m%dT%H%M%S")
    return f"recordings/pieces/lesson-{lesson_id}/{stamp}-{worker_id[:8]}-{index:05d}.webm"
