"""Live lesson services: scheduling, going live, ending, attendance, recording pieces.

This module is also run against PostgreSQL by tests/live/test_postgres.py, so it must not depend on the
database engine.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from live.errors import LessonEnded, LessonNotAllowed, NoMediaWorker
from live.models import Attendance, Lesson, MediaWorker, RecordingPiece
from live.selectors import attendance_seconds, lesson_viewer_names
from live.services import (
    attendance_join,
    attendance_leave,
    lesson_end,
    lesson_go_live,
    lesson_media_closed,
    lesson_schedule,
    media_worker_retire,
    recording_piece_add,
)
from outreach.errors import InvalidInput
from outreach.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)


def _rows() -> dict[str, int]:
    return {
        "lessons": Lesson.objects.count(),
        "audience_classrooms": Lesson.audience_classrooms.through.objects.count(),
        "audience_teachers": Lesson.audience_teachers.through.objects.count(),
        "audit": AuditEvent.objects.count(),
    }


def _schedule(actor: AbstractBaseUser, **overrides: Any) -> Lesson:
    fields: dict[str, Any] = {
        "title": "分数的初步认识",
        "subject": factories.subject(),
        "grade": factories.grade(),
        "scheduled_at": timezone.now() + dt.timedelta(days=1),
        "classrooms": [factories.classroom()],
    }
    fields.update(overrides)
    return lesson_schedule(actor=actor, **fields)


def _audit(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action))


# --- scheduling ----------------------------------------------------------------------------------------


def test_a_teacher_schedules_their_own_lesson() -> None:
    teacher = factories.teacher()
    room = factories.classroom()
    colleague = factories.teacher()

    lesson = _schedule(teacher, title="  分数的初步认识 ", classrooms=[room], teachers=[colleague, teacher])

    stored = Lesson.objects.get(pk=lesson.pk)
    assert stored.teacher_id == teacher.pk
    assert stored.created_by_id == teacher.pk
    assert stored.title == "分数的初步认识"
    assert stored.state == Lesson.State.SCHEDULED
    assert list(stored.audience_classrooms.all()) == [room]
    assert list(stored.audience_teachers.all()) == [colleague]  # the teacher is not their own audience
    [event] = _audit("lesson.scheduled")
    assert (event.actor_id, event.target_id) == (teacher.pk, str(lesson.pk))


def test_a_teacher_cannot_schedule_a_lesson_for_another_teacher() -> None:
    before = _rows()

    with pytest.raises(LessonNotAllowed):
        _schedule(factories.teacher(), teacher=factories.teacher())

    assert _rows() == before


def test_a_coordinator_must_name_the_teacher() -> None:
    coordinator = factories.coordinator()
    before = _rows()

    with pytest.raises(InvalidInput):
        _schedule(coordinator)

    assert _rows() == before
    teacher = factories.teacher()
    lesson = _schedule(coordinator, teacher=teacher)
    assert (lesson.teacher_id, lesson.created_by_id) == (teacher.pk, coordinator.pk)


def test_a_coordinator_cannot_make_a_classroom_account_the_teacher() -> None:
    before = _rows()

    with pytest.raises(InvalidInput):
        _schedule(factories.coordinator(), teacher=factories.classroom_account())

    assert _rows() == before


def test_only_teacher_accounts_can_be_a_training_audience() -> None:
    before = _rows()

    with pytest.raises(InvalidInput):
        _schedule(factories.teacher(), teachers=[factories.classroom_account()])

    assert _rows() == before


def test_a_classroom_account_cannot_schedule_lessons() -> None:
    before = _rows()

    with pytest.raises(LessonNotAllowed):
        _schedule(factories.classroom_account())

    assert _rows() == before


def test_an_account_without_a_profile_cannot_schedule_lessons() -> None:
    before = _rows()

    with pytest.raises(LessonNotAllowed):
        _schedule(factories.user())

    assert _rows() == before


def test_a_lesson_without_an_audience_is_refused() -> None:
    teacher = factories.teacher()
    before = _rows()

    with pytest.raises(InvalidInput):
        _schedule(teacher, classrooms=[], teachers=[])
    with pytest.raises(InvalidInput):
        _schedule(teacher, classrooms=[], teachers=[teacher])  # only themselves is no audience

    assert _rows() == before


@pytest.mark.parametrize("title", ["", "   ", "\n\t"])
def test_a_blank_title_is_refused(title: str) -> None:
    teacher = factories.teacher()
    before = _rows()

    with pytest.raises(InvalidInput):
        _schedule(teacher, title=title)

    assert _rows() == before


def test_a_training_for_teachers_only_is_a_valid_lesson() -> None:
    lesson = _schedule(factories.teacher(), classrooms=[], teachers=[factories.teacher()])

    assert lesson.audience_classrooms.count() == 0
    assert lesson.audience_teachers.count() == 1


# --- going live ----------------------------------------------------------------------------------------


def test_the_teacher_goes_live_and_the_lesson_is_pinned_to_a_live_worker() -> None:
    worker_id = factories.media_worker(channel_name="media-worker.abc")
    lesson = factories.lesson(classrooms=[factories.classroom()])

    returned, channel = lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher, ip="198.51.100.4")

    stored = Lesson.objects.get(pk=lesson.pk)
    assert channel == "media-worker.abc"
    assert returned.pk == lesson.pk
    assert stored.state == Lesson.State.LIVE
    assert stored.media_worker_id == worker_id
    assert stored.recording_state == Lesson.RecordingState.PENDING
    assert stored.started_at is not None
    assert abs((timezone.now() - stored.started_at).total_seconds()) < 60
    [event] = _audit("lesson.started")
    assert (event.actor_id, event.ip) == (lesson.teacher_id, "198.51.100.4")


@pytest.mark.parametrize(
    "make_actor",
    [factories.coordinator, factories.classroom_account, factories.teacher],
    ids=["coordinator", "audience classroom", "another teacher"],
)
def test_only_the_lessons_teacher_can_go_live(make_actor: Callable[[], AbstractBaseUser]) -> None:
    factories.media_worker()
    room = factories.classroom()
    lesson = factories.lesson(classrooms=[room])
    actor = make_actor()

    with pytest.raises(LessonNotAllowed):
        lesson_go_live(lesson_id=lesson.pk, actor=actor)

    stored = Lesson.objects.get(pk=lesson.pk)
    assert (stored.state, stored.media_worker_id, stored.started_at) == (Lesson.State.SCHEDULED, "", None)


def test_going_live_without_a_live_media_worker_is_refused_and_changes_nothing() -> None:
    stale = factories.media_worker()
    MediaWorker.objects.filter(worker_id=stale).update(last_seen=timezone.now() - dt.timedelta(minutes=5))
    lesson = factories.lesson(classrooms=[factories.classroom()])

    with pytest.raises(NoMediaWorker):
        lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)

    stored = Lesson.objects.get(pk=lesson.pk)
    assert (stored.state, stored.media_worker_id) == (Lesson.State.SCHEDULED, "")
    assert _audit("lesson.started") == []


def test_going_live_again_after_a_reload_keeps_the_lesson_and_its_worker() -> None:
    first_worker = factories.media_worker()
    lesson = factories.lesson(classrooms=[factories.classroom()])
    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)
    started_at = Lesson.objects.get(pk=lesson.pk).started_at
    factories.media_worker()  # a second, idle worker must not steal the lesson

    _lesson, channel = lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)

    stored = Lesson.objects.get(pk=lesson.pk)
    assert stored.media_worker_id == first_worker
    assert channel == f"media-worker.{first_worker}"
    assert stored.started_at == started_at
    assert stored.state == Lesson.State.LIVE
    assert len(_audit("lesson.started")) == 1


def test_a_live_lesson_whose_worker_died_moves_to_a_live_worker_on_the_next_publish() -> None:
    dead = factories.media_worker()
    lesson = factories.lesson(classrooms=[factories.classroom()])
    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)
    MediaWorker.objects.filter(worker_id=dead).update(last_seen=timezone.now() - dt.timedelta(minutes=5))
    alive = factories.media_worker()

    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)

    assert Lesson.objects.get(pk=lesson.pk).media_worker_id == alive
    assert len(_audit("lesson.started")) == 1


def test_only_the_worker_holding_the_lesson_can_report_its_media_closed() -> None:
    first = factories.media_worker()
    lesson = factories.lesson(classrooms=[factories.classroom()])
    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)
    # The first worker shuts down mid-lesson: it closes the lesson's media and leaves.
    lesson_media_closed(lesson_id=lesson.pk, worker_id=first)
    assert Lesson.objects.get(pk=lesson.pk).media_closed_at is not None
    media_worker_retire(worker_id=first)
    second = factories.media_worker()

    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)  # the teacher publishes again

    # The recording job must now wait for the second worker's last piece, not trust the first one's close.
    assert Lesson.objects.get(pk=lesson.pk).media_closed_at is None
    lesson_media_closed(lesson_id=lesson.pk, worker_id=first)  # a late close from the old worker
    assert Lesson.objects.get(pk=lesson.pk).media_closed_at is None
    lesson_media_closed(lesson_id=lesson.pk, worker_id=second)
    assert Lesson.objects.get(pk=lesson.pk).media_closed_at is not None


def test_an_ended_lesson_cannot_go_live_again() -> None:
    factories.media_worker()
    lesson = factories.lesson(classrooms=[factories.classroom()], state=Lesson.State.ENDED)

    with pytest.raises(LessonEnded):
        lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)

    assert Lesson.objects.get(pk=lesson.pk).state == Lesson.State.ENDED


# --- ending --------------------------------------------------------------------------------------------


def _live_lesson() -> Lesson:
    factories.media_worker()
    lesson = factories.lesson(classrooms=[factories.classroom()])
    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)
    return Lesson.objects.get(pk=lesson.pk)


def _finalise_jobs(lesson_id: int) -> list[DBTaskResult]:
    return [
        job
        for job in DBTaskResult.objects.filter(task_path="live.tasks.finalise_recording")
        if job.args_kwargs["args"] == [lesson_id]
    ]


@pytest.mark.parametrize("who", ["teacher", "coordinator", "system"])
def test_the_teacher_a_coordinator_or_the_system_can_end_a_live_lesson(
    who: str, django_capture_on_commit_callbacks: Any
) -> None:
    lesson = _live_lesson()
    actor = {"teacher": lesson.teacher, "coordinator": factories.coordinator(), "system": None}[who]

    with django_capture_on_commit_callbacks(execute=True):
        lesson_end(lesson_id=lesson.pk, actor=actor, reason="teacher", ip="203.0.113.9")

    stored = Lesson.objects.get(pk=lesson.pk)
    assert stored.state == Lesson.State.ENDED
    assert stored.ended_at is not None
    assert stored.end_reason == "teacher"
    assert stored.recording_state == Lesson.RecordingState.PENDING
    [event] = _audit("lesson.ended")
    assert event.actor_id == (actor.pk if actor is not None else None)
    assert event.extra == {"reason": "teacher"}


@pytest.mark.parametrize(
    "make_actor",
    [factories.classroom_account, factories.teacher, factories.user],
    ids=["audience classroom", "another teacher", "account without profile"],
)
def test_nobody_else_can_end_a_lesson(make_actor: Callable[[], AbstractBaseUser]) -> None:
    lesson = _live_lesson()
    actor = make_actor()

    with pytest.raises(LessonNotAllowed):
        lesson_end(lesson_id=lesson.pk, actor=actor)

    stored = Lesson.objects.get(pk=lesson.pk)
    assert (stored.state, stored.ended_at) == (Lesson.State.LIVE, None)
    assert _audit("lesson.ended") == []


def test_ending_twice_changes_nothing_the_second_time(django_capture_on_commit_callbacks: Any) -> None:
    lesson = _live_lesson()
    with django_capture_on_commit_callbacks(execute=True):
        lesson_end(lesson_id=lesson.pk, actor=lesson.teacher)
    ended_at = Lesson.objects.get(pk=lesson.pk).ended_at

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        again = lesson_end(lesson_id=lesson.pk, actor=lesson.teacher, reason="publisher_lost")

    assert again.state == Lesson.State.ENDED
    stored = Lesson.objects.get(pk=lesson.pk)
    assert (stored.ended_at, stored.end_reason) == (ended_at, "teacher")
    assert callbacks == []
    assert len(_audit("lesson.ended")) == 1
    assert len(_finalise_jobs(lesson.pk)) == 1


def test_ending_closes_every_open_attendance(django_capture_on_commit_callbacks: Any) -> None:
    room = factories.classroom()
    lesson = _live_lesson()
    lesson.audience_classrooms.add(room)
    viewer = factories.classroom_account(classroom_=room)
    earlier = factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0, left_at=T0 + dt.timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        attendance_join(lesson=lesson, user=viewer, connection_id="c-viewer", role=Attendance.Role.VIEWER)
        attendance_join(lesson=lesson, user=lesson.teacher, connection_id="c-teacher", role="publisher")

        lesson_end(lesson_id=lesson.pk, actor=lesson.teacher)

    ended_at = Lesson.objects.get(pk=lesson.pk).ended_at
    assert not Attendance.objects.filter(lesson=lesson, left_at__isnull=True).exists()
    assert set(
        Attendance.objects.filter(connection_id__in=["c-viewer", "c-teacher"]).values_list("left_at", flat=True)
    ) == {ended_at}
    earlier.refresh_from_db()
    assert earlier.left_at == T0 + dt.timedelta(minutes=5)


def test_ending_a_live_lesson_queues_the_recording_job_after_commit(
    django_capture_on_commit_callbacks: Any,
) -> None:
    lesson = _live_lesson()

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        lesson_end(lesson_id=lesson.pk, actor=lesson.teacher)
    assert _finalise_jobs(lesson.pk) == []  # nothing is queued before the transaction commits

    for callback in callbacks:
        callback()

    [job] = _finalise_jobs(lesson.pk)
    assert job.status == TaskResultStatus.READY
    assert job.args_kwargs == {"args": [lesson.pk], "kwargs": {}}


def test_ending_a_lesson_that_never_went_live_queues_no_recording_job(
    django_capture_on_commit_callbacks: Any,
) -> None:
    lesson = factories.lesson(classrooms=[factories.classroom()])

    with django_capture_on_commit_callbacks(execute=True):
        lesson_end(lesson_id=lesson.pk, actor=lesson.teacher)

    stored = Lesson.objects.get(pk=lesson.pk)
    assert stored.state == Lesson.State.ENDED
    assert stored.recording_state == Lesson.RecordingState.NONE
    assert _finalise_jobs(lesson.pk) == []


# --- attendance ----------------------------------------------------------------------------------------


def test_joining_and_leaving_writes_one_attendance_row(django_capture_on_commit_callbacks: Any) -> None:
    lesson = factories.lesson(classrooms=[factories.classroom()])
    viewer = factories.classroom_account()

    with django_capture_on_commit_callbacks(execute=True):
        row = attendance_join(lesson=lesson, user=viewer, connection_id="conn-a", role=Attendance.Role.VIEWER)
    assert Attendance.objects.get(pk=row.pk).left_at is None

    with django_capture_on_commit_callbacks(execute=True):
        attendance_leave(connection_id="conn-a")
        left_at = Attendance.objects.get(pk=row.pk).left_at
        attendance_leave(connection_id="conn-a")  # a second disconnect changes nothing
        attendance_leave(connection_id="never-joined")

    stored = Attendance.objects.get(pk=row.pk)
    assert stored.left_at is not None
    assert stored.left_at == left_at
    assert stored.joined_at <= stored.left_at
    assert Attendance.objects.count() == 1


def _held(lesson: Lesson, *, minutes: int = 60) -> Lesson:
    """The lesson was live from T0 for ``minutes``."""
    Lesson.objects.filter(pk=lesson.pk).update(
        state=Lesson.State.ENDED, started_at=T0, ended_at=T0 + dt.timedelta(minutes=minutes)
    )
    return lesson


def test_two_overlapping_devices_of_one_user_count_once() -> None:
    lesson = _held(factories.lesson(classrooms=[factories.classroom()]))
    viewer = factories.classroom_account()
    minute = dt.timedelta(minutes=1)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0, left_at=T0 + 30 * minute)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0 + 10 * minute, left_at=T0 + 40 * minute)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0 + 12 * minute, left_at=T0 + 20 * minute)

    assert attendance_seconds(lesson_id=lesson.pk) == {viewer.pk: 40 * 60.0}


def test_gaps_between_reconnects_are_not_counted() -> None:
    lesson = _held(factories.lesson(classrooms=[factories.classroom()]))
    viewer = factories.classroom_account()
    other = factories.teacher()
    minute = dt.timedelta(minutes=1)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0, left_at=T0 + 10 * minute)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0 + 15 * minute, left_at=T0 + 20 * minute)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0 + 20 * minute, left_at=T0 + 25 * minute)
    factories.attendance(lesson_=lesson, user_=other, joined_at=T0 + 5 * minute, left_at=None)

    seconds = attendance_seconds(lesson_id=lesson.pk, now=T0 + 60 * minute)

    assert seconds == {viewer.pk: 20 * 60.0, other.pk: 55 * 60.0}


def test_a_lesson_nobody_attended_has_no_attendance_seconds() -> None:
    assert attendance_seconds(lesson_id=_held(factories.lesson()).pk) == {}


def test_waiting_before_the_lesson_starts_and_staying_after_it_ends_do_not_count() -> None:
    lesson = _held(factories.lesson(classrooms=[factories.classroom()]), minutes=45)
    viewer = factories.classroom_account()
    minute = dt.timedelta(minutes=1)
    factories.attendance(lesson_=lesson, user_=viewer, joined_at=T0 - 20 * minute, left_at=T0 + 50 * minute)
    assert attendance_seconds(lesson_id=lesson.pk) == {viewer.pk: 45 * 60.0}


def test_a_lesson_that_never_went_live_has_no_attendance_seconds() -> None:
    lesson = factories.lesson(classrooms=[factories.classroom()])
    factories.attendance(
        lesson_=lesson, user_=factories.classroom_account(), joined_at=T0, left_at=T0 + dt.timedelta(minutes=5)
    )
    assert attendance_seconds(lesson_id=lesson.pk) == {}


def test_viewer_names_list_each_watching_user_once() -> None:
    room = factories.classroom()
    lesson = factories.lesson(classrooms=[room])
    projector = factories.classroom_account(classroom_=room, display_name="石渠一小 四年级一班")
    colleague = factories.teacher(display_name="扎西老师")
    gone = factories.classroom_account(display_name="已离开")
    now = timezone.now()
    factories.attendance(lesson_=lesson, user_=projector, joined_at=now, left_at=None)
    factories.attendance(lesson_=lesson, user_=projector, joined_at=now, left_at=None)  # second device
    factories.attendance(lesson_=lesson, user_=colleague, joined_at=now, left_at=None)
    factories.attendance(lesson_=lesson, user_=gone, joined_at=now, left_at=now)
    factories.attendance(lesson_=lesson, user_=lesson.teacher, joined_at=now, left_at=None, role="publisher")

    assert lesson_viewer_names(lesson_id=lesson.pk) == ["石渠一小 四年级一班", "扎西老师"]


# --- recording pieces ----------------------------------------------------------------------------------


def test_adding_the_same_recording_piece_twice_keeps_one_row() -> None:
    lesson = factories.lesson(classrooms=[factories.classroom()])
    fields = {
        "lesson_id": lesson.pk,
        "storage_name": "recordings/pieces/lesson-1/20260302T100000-abcdef12-00000.webm",
        "started_at": T0,
        "ended_at": T0 + dt.timedelta(seconds=5),
        "frames": 125,
    }

    first = recording_piece_add(**fields)
    second = recording_piece_add(**fields)

    assert first.pk == second.pk
    assert RecordingPiece.objects.count() == 1
    assert RecordingPiece.objects.get().frames == 125


# --- the teacher's grace period (durable) ---------------------------------------------------------------


def test_a_lost_teacher_queues_a_durable_job_that_ends_the_lesson_after_the_grace_period(
    django_capture_on_commit_callbacks: Any, settings: Any
) -> None:
    from live.services import lesson_end_if_abandoned, lesson_publisher_lost

    settings.LIVE_PUBLISHER_GRACE_SECONDS = 60
    lesson = _live_lesson()
    with django_capture_on_commit_callbacks(execute=True):
        lesson_publisher_lost(lesson_id=lesson.pk)
        lesson_publisher_lost(lesson_id=lesson.pk)  # a second report changes nothing

    [job] = DBTaskResult.objects.filter(task_path="live.tasks.end_abandoned_lesson")
    assert job.args_kwargs["args"] == [lesson.pk]
    lost_at = Lesson.objects.get(pk=lesson.pk).publisher_lost_at
    assert lost_at is not None
    assert abs((job.run_after - lost_at).total_seconds() - 60) < 1
    assert lesson_end_if_abandoned(lesson_id=lesson.pk) is False  # too early: still live
    assert Lesson.objects.get(pk=lesson.pk).state == Lesson.State.LIVE

    Lesson.objects.filter(pk=lesson.pk).update(publisher_lost_at=timezone.now() - dt.timedelta(seconds=61))
    with django_capture_on_commit_callbacks(execute=True):
        assert lesson_end_if_abandoned(lesson_id=lesson.pk) is True
    ended = Lesson.objects.get(pk=lesson.pk)
    assert ended.state == Lesson.State.ENDED and ended.end_reason == "publisher_lost"


def test_a_teacher_who_comes_back_within_the_grace_period_keeps_the_lesson(
    django_capture_on_commit_callbacks: Any,
) -> None:
    from live.services import lesson_end_if_abandoned, lesson_publisher_lost

    lesson = _live_lesson()
    with django_capture_on_commit_callbacks(execute=True):
        lesson_publisher_lost(lesson_id=lesson.pk)
    Lesson.objects.filter(pk=lesson.pk).update(publisher_lost_at=timezone.now() - dt.timedelta(hours=1))
    lesson_go_live(lesson_id=lesson.pk, actor=lesson.teacher)  # the teacher published again

    assert lesson_end_if_abandoned(lesson_id=lesson.pk) is False
    assert Lesson.objects.get(pk=lesson.pk).state == Lesson.State.LIVE


def test_live_lessons_left_on_a_dead_worker_count_as_abandoned(django_capture_on_commit_callbacks: Any) -> None:
    from live.services import lessons_orphaned_mark

    lesson = _live_lesson()
    MediaWorker.objects.filter(worker_id=lesson.media_worker_id).update(
        last_seen=timezone.now() - dt.timedelta(hours=1)
    )
    survivor = factories.media_worker()

    with django_capture_on_commit_callbacks(execute=True):
        assert lessons_orphaned_mark(except_worker_id=survivor) == 1
        assert lessons_orphaned_mark(except_worker_id=survivor) == 0  # marked once

    assert Lesson.objects.get(pk=lesson.pk).publisher_lost_at is not None
    assert DBTaskResult.objects.filter(task_path="live.tasks.end_abandoned_lesson").count() == 1
