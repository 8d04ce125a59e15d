"""Live-lesson domain errors, mapped to WebSocket close codes / error frames in consumers.py."""

from __future__ import annotations

from outreach.errors import DomainError, InvalidInput, InvalidState, NotAllowed, NotFound


class LessonNotFound(NotFound):
    code = "lesson_not_found"


class LessonNotAllowed(NotAllowed):
    code = "not_allowed"


class LessonNotLive(InvalidState):
    code = "lesson_not_live"


class LessonEnded(InvalidState):
    code = "lesson_ended"


class NoMediaWorker(DomainError):
    code = "no_media_worker"


class BadSignal(InvalidInput):
    code = "bad_message"
