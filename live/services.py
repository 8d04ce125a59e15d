"""Writes of live lessons. Each user-visible action is one function here; consumers and views only call them."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Iterable
from functools import partial

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from outreach.errors import InvalidInput
from outreach.models import Classroom, Grade, Profile, Subject
from outreach.selectors import profile_for, user_is_coordinator
from outreach.services import audit_record

from . import events
from .errors import LessonEnded, LessonNotAllowed, NoMediaWorker
from .models import Attendance, Lesson, MediaWorker, RecordingPiece
from .selectors import lesson_viewer_names, media_worker_channel, media_worker_is_alive, media_workers_alive

log = logging.getLogger(__name__)

_LONG_AGO = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


# --- scheduling ----------------------------------------------------------------------------------------


@transaction.atomic
def lesson_schedule(
    *,
    actor: User,
    title: str,
    subject: Subject,
    grade: Grade,
    scheduled_at: dt.datetime,
    classrooms: Iterable[Classroom] = (),
    teachers: Iterable[User] = (),
    teacher: User | None = None,
) -> Lesson:
    """Schedule a lesson. A teacher schedules their own; a coordinator names the teacher.

    A lesson whose audience is teachers only is a training.
    """
    title = title.strip()
    if not title:
        raise InvalidInput(_("请填写课程标题。"))
    if scheduled_at < timezone.now() - dt.timedelta(minutes=5):
        raise InvalidInput(_("上课时间不能早于现在。"))
    actor_profile = profile_for(actor)
    if user_is_coordinator(actor):
        if teacher is None:
            raise InvalidInput(_("请选择授课教师。"))
    elif actor_profile is not None and actor_profile.role == Profile.Role.TEACHER:
        if teacher is not None and teacher.pk != actor.pk:
            raise LessonNotAllowed(_("教师只能为自己安排课程。"))
        teacher = actor
    else:
        raise LessonNotAllowed(_("只有教师和协调员可以安排课程。"))
    teacher_profile = profile_for(teacher)
    if teacher_profile is None or teacher_profile.role != Profile.Role.TEACHER:
        raise InvalidInput(_("授课人必须是教师账号。"))
    classrooms = list(classrooms)
    teachers = [t for t in teachers if t.pk != teacher.pk]
    teacher_ids = set(
        Profile.objects.filter(user__in=teachers, role=Profile.Role.TEACHER).values_list("user_id", flat=True)
    )
    if any(t.pk not in teacher_ids for t in teachers):
        raise InvalidInput(_("听课教师必须是教师账号。"))
    if not classrooms and not teachers:
        raise InvalidInput(_("请至少选择一个听课教室或教师。"))
    lesson = Lesson.objects.create(
        title=title,
        subject=subject,
        grade=grade,
        teacher=teacher,
        scheduled_at=scheduled_at,
        created_by=actor,
    )
    lesson.audience_classrooms.set(classrooms)
    lesson.audience_teachers.set(teachers)
    audit_record(actor=actor, action="lesson.scheduled", target=lesson)
    return lesson


# --- going live and ending ------------------------------------------------------------------------------


def _pick_worker() -> MediaWorker:
    worker = media_workers_alive().order_by("peers", "lessons", "started_at").first()
    if worker is None:
        raise NoMediaWorker(_("媒体服务暂时不可用，请稍后再试。"))
    return worker


def lesson_go_live(*, lesson_id: int, actor: User, ip: str | None = None) -> tuple[Lesson, str]:
    """The teacher publishes: the lesson becomes live (first time) and is pinned to a live media worker.

    Returns the lesson and the channel name of its media worker. Publishing again (the teacher reloaded)
    keeps the lesson and, while its worker lives, the worker.
    """
    with transaction.atomic():
        lesson = Lesson.objects.select_for_update().get(pk=lesson_id)
        if lesson.teacher_id != actor.pk:
            raise LessonNotAllowed(_("只有本课的授课教师可以开播。"))
        if lesson.state == Lesson.State.ENDED:
            raise LessonEnded(_("这节课已经结束。"))
        if not media_worker_is_alive(lesson.media_worker_id):
            worker = _pick_worker()
            lesson.media_worker_id = worker.worker_id
            # A previous worker may have closed its media already; the recording job must now wait for
            # this one's last piece.
            lesson.media_closed_at = None
        lesson.publisher_lost_at = None
        first_time = lesson.state == Lesson.State.SCHEDULED
        if first_time:
            lesson.state = Lesson.State.LIVE
            lesson.started_at = timezone.now()
            lesson.recording_state = Lesson.RecordingState.PENDING
        lesson.save(
            update_fields=[
                "state",
                "started_at",
                "media_worker_id",
                "media_closed_at",
                "recording_state",
                "publisher_lost_at",
            ]
        )
        if first_time:
            audit_record(actor=actor, action="lesson.started", target=lesson, ip=ip)
            transaction.on_commit(partial(events.lesson_broadcast, lesson.pk, "state", state=lesson.state))
    channel = media_worker_channel(lesson.media_worker_id)
    if channel is None:
        raise NoMediaWorker(_("媒体服务暂时不可用，请稍后再试。"))
    return lesson, channel


def lesson_repin_worker(*, lesson_id: int, unresponsive_worker_id: str) -> str | None:
    """The lesson's media worker did not answer: take it for dead and pin the lesson to another live one.

    Returns the channel of the worker the lesson is now pinned to (None if none is alive). A worker that was
    only slow re-registers itself with its next heartbeat.
    """
    with transaction.atomic():
        MediaWorker.objects.filter(worker_id=unresponsive_worker_id).update(last_seen=_LONG_AGO)
        lesson = Lesson.objects.select_for_update().get(pk=lesson_id)
        if lesson.state != Lesson.State.LIVE:
            return None
        if lesson.media_worker_id == unresponsive_worker_id or not media_worker_is_alive(lesson.media_worker_id):
            try:
                worker = _pick_worker()
            except NoMediaWorker:
                return None
            log.warning("lesson %s: media worker %s unresponsive; re-pinned to %s", lesson_id,
                        unresponsive_worker_id, worker.worker_id)  # fmt: skip
            lesson.media_worker_id = worker.worker_id
            lesson.media_closed_at = None
            lesson.save(update_fields=["media_worker_id", "media_closed_at"])
    return media_worker_channel(lesson.media_worker_id)


def lesson_media_worker(*, lesson_id: int) -> tuple[str, str] | None:
    """(worker id, channel) of the live worker holding the lesson's media, if the lesson is live."""
    lesson = Lesson.objects.only("media_worker_id", "state").get(pk=lesson_id)
    if lesson.state != Lesson.State.LIVE or not media_worker_is_alive(lesson.media_worker_id):
        return None
    channel = media_worker_channel(lesson.media_worker_id)
    return (lesson.media_worker_id, channel) if channel else None


def lesson_media_channel(*, lesson_id: int) -> str | None:
    """The channel of the live worker that holds the lesson's media, if any (viewers join through it)."""
    lesson = Lesson.objects.only("media_worker_id", "state").get(pk=lesson_id)
    if lesson.state != Lesson.State.LIVE or not media_worker_is_alive(lesson.media_worker_id):
        return None
    return media_worker_channel(lesson.media_worker_id)


def lesson_end(*, lesson_id: int, actor: User | None, reason: str = "teacher", ip: str | None = None) -> Lesson:
    """End a lesson (its teacher, a coordinator, or the system with actor=None). Idempotent.

    After commit: browsers hear ``state: ended``, the media worker closes the lesson's media (its last
    recording piece), and the recording job is queued.
    """
    from .tasks import finalise_recording  # tasks import services; keep the cycle out of module import

    with transaction.atomic():
        lesson = Lesson.objects.select_for_update().get(pk=lesson_id)
        if actor is not None and lesson.teacher_id != actor.pk and not user_is_coordinator(actor):
            raise LessonNotAllowed(_("只有授课教师或协调员可以结束课程。"))
        if lesson.state == Lesson.State.ENDED:
            return lesson
        was_live = lesson.state == Lesson.State.LIVE
        now = timezone.now()
        lesson.state = Lesson.State.ENDED
        lesson.ended_at = now
        lesson.end_reason = reason
        if not was_live:
            lesson.recording_state = Lesson.RecordingState.NONE
        lesson.save(update_fields=["state", "ended_at", "end_reason", "recording_state"])
        Attendance.objects.filter(lesson=lesson, left_at__isnull=True).update(left_at=now)
        audit_record(actor=actor, action="lesson.ended", target=lesson, ip=ip, extra={"reason": reason})
        transaction.on_commit(partial(events.lesson_broadcast, lesson.pk, "state", state=lesson.state))
        if was_live:
            channel = media_worker_channel(lesson.media_worker_id)
            if channel:
                transaction.on_commit(
                    partial(events.worker_send, channel, {"type": "media.close_lesson", "lesson": lesson.pk})
                )
            transaction.on_commit(lambda: finalise_recording.enqueue(lesson_id))
    return lesson


# --- attendance -----------------------------------------------------------------------------------------


def _broadcast_viewers(lesson_id: int) -> None:
    names = lesson_viewer_names(lesson_id=lesson_id)
    events.lesson_broadcast(lesson_id, "viewers", count=len(names), names=names)


def attendance_join(*, lesson: Lesson, user: User, connection_id: str, role: str) -> Attendance:
    with transaction.atomic():
        row = Attendance.objects.create(
            lesson=lesson, user=user, connection_id=connection_id, role=role, joined_at=timezone.now()
        )
        transaction.on_commit(partial(_broadcast_viewers, lesson.pk))
    return row


def attendance_leave(*, connection_id: str) -> None:
    with transaction.atomic():
        row = Attendance.objects.filter(connection_id=connection_id, left_at__isnull=True).first()
        if row is None:
            return
        row.left_at = timezone.now()
        row.save(update_fields=["left_at"])
        transaction.on_commit(partial(_broadcast_viewers, row.lesson_id))


# --- media workers and recording pieces ------------------------------------------------------------------


def media_worker_heartbeat(*, worker_id: str, channel_name: str, lessons: int, peers: int) -> None:
    now = timezone.now()
    MediaWorker.objects.update_or_create(
        worker_id=worker_id,
        defaults={
            "channel_name": channel_name,
            "hostname": socket.gethostname(),
            "last_seen": now,
            "lessons": lessons,
            "peers": peers,
        },
        create_defaults={
            "channel_name": channel_name,
            "hostname": socket.gethostname(),
            "last_seen": now,
            "started_at": now,
            "lessons": lessons,
            "peers": peers,
        },
    )


def media_worker_retire(*, worker_id: str) -> None:
    MediaWorker.objects.filter(worker_id=worker_id).delete()


def recording_piece_add(
    *, lesson_id: int, storage_name: str, started_at: dt.datetime, ended_at: dt.datetime, frames: int
) -> RecordingPiece:
    piece, _created = RecordingPiece.objects.get_or_create(
        storage_name=storage_name,
        defaults={"lesson_id": lesson_id, "started_at": started_at, "ended_at": ended_at, "frames": frames},
    )
    return piece


def lesson_media_closed(*, lesson_id: int, worker_id: str) -> None:
    """A media worker closed the lesson's media and stored its last piece.

    Only the worker the lesson is pinned to speaks for it: an earlier worker that shut down mid-lesson
    must not make the recording job start before the current worker has handed over its pieces.
    """
    Lesson.objects.filter(pk=lesson_id, media_worker_id=worker_id, media_closed_at__isnull=True).update(
        media_closed_at=timezone.now()
    )


def lesson_publisher_lost(*, lesson_id: int) -> None:
    """The teacher's stream went away without the lesson being ended (closed tab, lost link, worker shut down).

    Queues a durable job that ends the lesson after LIVE_PUBLISHER_GRACE_SECONDS unless the teacher
    publishes again meanwhile; it survives restarts of every process.
    """
    from .tasks import end_abandoned_lesson

    now = timezone.now()
    with transaction.atomic():
        updated = Lesson.objects.filter(pk=lesson_id, state=Lesson.State.LIVE, publisher_lost_at__isnull=True).update(
            publisher_lost_at=now
        )
        if updated:
            run_after = now + dt.timedelta(seconds=settings.LIVE_PUBLISHER_GRACE_SECONDS)
            transaction.on_commit(lambda: end_abandoned_lesson.using(run_after=run_after).enqueue(lesson_id))


def lesson_end_if_abandoned(*, lesson_id: int) -> bool:
    """End the lesson if its teacher has been gone for the whole grace period. Returns whether it ended."""
    cutoff = timezone.now() - dt.timedelta(seconds=settings.LIVE_PUBLISHER_GRACE_SECONDS - 0.5)
    lesson = Lesson.objects.only("state", "publisher_lost_at").get(pk=lesson_id)
    if lesson.state != Lesson.State.LIVE or lesson.publisher_lost_at is None or lesson.publisher_lost_at > cutoff:
        return False
    lesson_end(lesson_id=lesson_id, actor=None, reason="publisher_lost")
    return True


def lessons_orphaned_mark(*, except_worker_id: str) -> int:
    """Live lessons pinned to a worker that is gone (SIGKILLed, host lost) count as having lost their teacher.

    Called by every live media worker now and then, so that such a lesson ends after the grace period even if
    its teacher never comes back. Returns how many were marked.
    """
    alive = set(media_workers_alive().values_list("worker_id", flat=True))
    orphaned = (
        Lesson.objects.filter(state=Lesson.State.LIVE, publisher_lost_at__isnull=True)
        .exclude(media_worker_id__in=alive | {except_worker_id})
        .values_list("pk", flat=True)
    )
    count = 0
    for lesson_id in list(orphaned):
        lesson_publisher_lost(lesson_id=lesson_id)
        count += 1
    return count
