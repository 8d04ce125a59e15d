"""Durable jobs of the live app (django-tasks database backend: they survive a process restart)."""

from __future__ import annotations

from django_tasks import task

from .finalise import recording_finalise


@task()
def finalise_recording(lesson_id: int) -> int | None:
    """Join a finished lesson's recording pieces into a library item; returns its id."""
    return recording_finalise(lesson_id=lesson_id)
