"""Durable jobs of the live app (django-tasks database backend: they survive a process restart)."""

from __future__ import annotations

from django_tasks import task

from .finalise import recording_finalise
from .services import lesson_end_if_abandoned


@task()
def finalise_recording(lesson_id: int) -> int | None:
    """Join a finished lesson's recording pieces into a library item; returns its id."""
    return recording_finalise(lesson_id=lesson_id)


@task()
def end_abandoned_lesson(lesson_id: int) -> bool:
    """Runs a grace period after the teacher's stream went away; ends the lesson if they did not return."""
    return lesson_end_if_abandoned(lesson_id=lesson_id)
