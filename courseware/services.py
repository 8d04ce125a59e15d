"""Writes of the library. One function per action; files and rows are written together or not at all."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from django.contrib.auth.models import User
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction

from outreach.models import Grade, Subject
from outreach.services import audit_record

from .models import RecordedClass

log = logging.getLogger(__name__)


def recorded_class_create(
    *,
    title: str,
    subject: Subject | None,
    grade: Grade | None,
    teacher: User | None,
    video_path: Path,
    poster_path: Path | None,
    duration_s: float,
    frame_count: int,
    width: int,
    height: int,
    has_audio: bool,
    recorded_at: dt.datetime | None = None,
    notes: str = "",
) -> RecordedClass:
    """Store a finished recording (and its poster) through Django storage and add it to the library.

    If anything fails, the files already stored are deleted again: no row without files, no orphaned files.
    """
    saved: list[str] = []
    try:
        with transaction.atomic():
            item = RecordedClass(
                title=title,
                subject=subject,
                grade=grade,
                teacher=teacher,
                duration_s=duration_s,
                frame_count=frame_count,
                width=width,
                height=height,
                has_audio=has_audio,
                recorded_at=recorded_at,
                notes=notes,
                size_bytes=video_path.stat().st_size,
                content_type="video/webm",
            )
            with video_path.open("rb") as fh:
                item.video.save(f"class-{video_path.stem}.webm", File(fh), save=False)
            saved.append(str(item.video.name))
            if poster_path is not None and poster_path.exists():
                with poster_path.open("rb") as fh:
                    item.poster.save(f"class-{video_path.stem}.jpg", File(fh), save=False)
                saved.append(str(item.poster.name))
            item.save()
            audit_record(
                actor=None,
                action="recording.published",
                target=item,
                extra={"duration_s": round(duration_s, 2), "frames": frame_count},
            )
            return item
    except BaseException:
        for name in saved:
            try:
                default_storage.delete(name)
            except Exception:  # the original error matters more than a failed clean-up
                log.exception("could not delete %s after a failed recorded_class_create", name)
        raise


def recorded_class_delete(*, item_id: int) -> None:
    """Remove an item and its files (used when a duplicate was produced by a retried job)."""
    item = RecordedClass.objects.filter(pk=item_id).first()
    if item is None:
        return
    names = [n for n in (item.video.name, item.poster.name) if n]
    item.delete()
    for name in names:
        default_storage.delete(name)
