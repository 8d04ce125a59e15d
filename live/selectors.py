"""Reads of live lessons, permission-checked."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Literal

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from outreach.models import Profile
from outreach.selectors import profile_for, user_is_coordinator

from .errors import LessonNotAllowed, LessonNotFound
from .models import Attendance, Lesson, MediaWorker

LessonRole = Literal["publisher", "viewer"]
AnyUser = AbstractBaseUser | AnonymousUser


def lesson_role(*, user: AnyUser, lesson: Lesson) -> LessonRole | None:
    """What the user may do in the lesson: publish (its teacher), watch (its audience, coordinators) or nothing."""
    if not user.is_authenticated:
        return None
    if lesson.teacher_id == user.pk:
        return "publisher"
    if user_is_coordinator(user):
        return "viewer"
    profile = profile_for(user)
    if profile is None:
        return None
    if profile.role == Profile.Role.CLASSROOM and profile.classroom_id is not None:
        if lesson.audience_classrooms.filter(pk=profile.classroom_id).exists():
            return "viewer"
    if lesson.audience_teachers.filter(pk=user.pk).exists():
        return "viewer"
    return None


def lesson_get_for_participant(*, user: AnyUser, lesson_id: int) -> tuple[Lesson, LessonRole]:
    """The lesson and the user's role in it. Raises LessonNotFound or LessonNotAllowed."""
    try:
        lesson = Lesson.objects.select_related("subject", "grade", "teacher").get(pk=lesson_id)
    except Lesson.DoesNotExist as exc:
        raise LessonNotFound(_("找不到这节课。")) from exc
    role = lesson_role(user=user, lesson=lesson)
    if role is None:
        raise LessonNotAllowed(_("您不在这节课的听课名单中。"))
    return lesson, role


def lessons_for_home(*, user: AnyUser) -> QuerySet[Lesson]:
    """Lessons not yet ended that the user teaches, attends, or (coordinators) oversees."""
    base = Lesson.objects.exclude(state=Lesson.State.ENDED).select_related("subject", "grade", "teacher__profile")
    if not user.is_authenticated:
        return base.none()
    if user_is_coordinator(user):
        return base.order_by("scheduled_at")
    profile = profile_for(user)
    condition = Q(teacher_id=user.pk) | Q(audience_teachers=user.pk)
    if profile is not None and profile.classroom_id is not None:
        condition |= Q(audience_classrooms=profile.classroom_id)
    return base.filter(condition).distinct().order_by("scheduled_at")


def lesson_viewer_names(*, lesson_id: int) -> list[str]:
    """Display names of users watching right now (one entry per user however many devices)."""
    rows = (
        Attendance.objects.filter(lesson_id=lesson_id, role=Attendance.Role.VIEWER, left_at__isnull=True)
        .select_related("user__profile")
        .order_by("joined_at")
    )
    names: dict[int, str] = {}
    for row in rows:
        profile = getattr(row.user, "profile", None)
        names.setdefault(row.user_id, profile.display_name if profile else row.user.get_username())
    return list(names.values())


def attendance_seconds(*, lesson_id: int, now: dt.datetime | None = None) -> dict[int, float]:
    """Seconds each user attended while the lesson was live, overlapping connections (two devices) once.

    Time a projector page spent waiting before the lesson started does not count.
    """
    now = now or timezone.now()
    lesson = Lesson.objects.only("started_at", "ended_at").get(pk=lesson_id)
    if lesson.started_at is None:
        return {}
    live_from, live_until = lesson.started_at, lesson.ended_at or now
    intervals: dict[int, list[tuple[dt.datetime, dt.datetime]]] = defaultdict(list)
    for row in Attendance.objects.filter(lesson_id=lesson_id).only("user_id", "joined_at", "left_at"):
        start, end = max(row.joined_at, live_from), min(row.left_at or now, live_until)
        if end > start:
            intervals[row.user_id].append((start, end))
    result: dict[int, float] = {}
    for user_id, spans in intervals.items():
        spans.sort()
        total = 0.0
        cur_start, cur_end = spans[0]
        for start, end in spans[1:]:
            if start <= cur_end:
                cur_end = max(cur_end, end)
            else:
                total += (cur_end - cur_start).total_seconds()
                cur_start, cur_end = start, end
        total += (cur_end - cur_start).total_seconds()
        result[user_id] = total
    return result


def attendance_owns_connection(*, user_id: int, lesson_id: int, connection_id: str) -> bool:
    """Whether this connection id was this user's in this lesson (a page may resume its media peer)."""
    return Attendance.objects.filter(user_id=user_id, lesson_id=lesson_id, connection_id=connection_id).exists()


def media_workers_alive() -> QuerySet[MediaWorker]:
    cutoff = timezone.now() - dt.timedelta(seconds=settings.MEDIA_WORKER_STALE_SECONDS)
    return MediaWorker.objects.filter(last_seen__gte=cutoff)


def media_worker_is_alive(worker_id: str) -> bool:
    return bool(worker_id) and media_workers_alive().filter(worker_id=worker_id).exists()


def media_worker_channel(worker_id: str) -> str | None:
    row = MediaWorker.objects.filter(worker_id=worker_id).values_list("channel_name", flat=True).first()
    return row
