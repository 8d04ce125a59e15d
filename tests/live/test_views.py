"""Lesson pages: schedule, broadcast, watch, end, and the home page that lists lessons."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from live.models import Lesson
from outreach.models import AuditEvent
from tests import factories

pytestmark = pytest.mark.django_db


def client_for(user: AbstractBaseUser | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture
def lesson() -> Lesson:
    room = factories.classroom()
    factories.classroom_account(classroom_=room)
    return factories.lesson(classrooms=[room], title="分数的初步认识")


def _audience_classroom(lesson: Lesson) -> AbstractBaseUser:
    return lesson.audience_classrooms.get().accounts.get().user


def _form(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "title": "藏语文 · 第三课",
        "subject": factories.subject().pk,
        "grade": factories.grade().pk,
        "scheduled_at": (timezone.localtime() + dt.timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        "classrooms": [factories.classroom().pk],
    }
    data.update(overrides)
    return data


# --- scheduling ----------------------------------------------------------------------------------------


def test_a_teacher_schedules_a_lesson_from_the_form() -> None:
    teacher = factories.teacher()
    client = client_for(teacher)
    page = client.get(reverse("live:schedule"))
    assert page.status_code == 200
    assert 'name="teacher"' not in page.content.decode()  # a teacher schedules their own

    response = client.post(reverse("live:schedule"), _form())

    assert response.status_code == 302
    assert response["Location"] == reverse("home")
    lesson = Lesson.objects.get()
    assert (lesson.title, lesson.teacher_id, lesson.created_by_id) == ("藏语文 · 第三课", teacher.pk, teacher.pk)


def test_a_coordinator_must_pick_the_teacher_in_the_form() -> None:
    client = client_for(factories.coordinator())
    teacher = factories.teacher()
    assert 'name="teacher"' in client.get(reverse("live:schedule")).content.decode()

    refused = client.post(reverse("live:schedule"), _form())
    accepted = client.post(reverse("live:schedule"), _form(teacher=teacher.pk))

    assert refused.status_code == 400
    assert accepted.status_code == 302
    assert Lesson.objects.get().teacher_id == teacher.pk


def test_a_classroom_account_is_told_it_cannot_schedule_and_nothing_is_saved() -> None:
    client = client_for(factories.classroom_account())

    page = client.get(reverse("live:schedule"))
    response = client.post(reverse("live:schedule"), _form())

    for refused in (page, response):
        assert refused.status_code == 403
        assert "只有教师和协调员可以安排课程" in refused.content.decode()  # on the site's own 403 page
        assert "返回首页" in refused.content.decode()
    assert Lesson.objects.count() == 0
    assert AuditEvent.objects.count() == 0


def test_a_lesson_in_the_past_is_refused() -> None:
    past = (timezone.localtime() - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = client_for(factories.teacher()).post(reverse("live:schedule"), _form(scheduled_at=past))

    assert response.status_code == 400
    assert "上课时间不能早于现在" in response.content.decode()
    assert Lesson.objects.count() == 0


def test_a_lesson_without_an_audience_is_refused_by_the_form() -> None:
    response = client_for(factories.teacher()).post(reverse("live:schedule"), _form(classrooms=[]))

    assert response.status_code == 400
    assert "请至少选择一个听课教室或教师" in response.content.decode()
    assert Lesson.objects.count() == 0


def test_scheduling_needs_a_login() -> None:
    response = client_for(None).get(reverse("live:schedule"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


# --- broadcast and watch pages -------------------------------------------------------------------------


def test_only_the_teacher_opens_the_broadcast_page(lesson: Lesson) -> None:
    url = reverse("live:broadcast", args=[lesson.pk])

    assert client_for(lesson.teacher).get(url).status_code == 200
    assert client_for(_audience_classroom(lesson)).get(url).status_code == 403
    assert client_for(factories.coordinator()).get(url).status_code == 403
    assert client_for(factories.teacher()).get(url).status_code == 403


def test_the_audience_and_coordinators_open_the_watch_page_and_others_do_not(lesson: Lesson) -> None:
    url = reverse("live:watch", args=[lesson.pk])

    page = client_for(_audience_classroom(lesson)).get(url)
    assert page.status_code == 200
    assert "分数的初步认识" in page.content.decode()
    assert client_for(factories.coordinator()).get(url).status_code == 200
    assert client_for(factories.classroom_account()).get(url).status_code == 403
    assert client_for(factories.user()).get(url).status_code == 403
    assert client_for(_audience_classroom(lesson)).get(reverse("live:watch", args=[lesson.pk + 99])).status_code == 404


# --- ending --------------------------------------------------------------------------------------------


def test_the_teacher_ends_the_lesson_from_the_page(lesson: Lesson) -> None:
    response = client_for(lesson.teacher).post(reverse("live:end", args=[lesson.pk]))

    assert response.status_code == 302
    lesson.refresh_from_db()
    assert lesson.state == Lesson.State.ENDED
    assert AuditEvent.objects.get(action="lesson.ended").ip == "127.0.0.1"


def test_a_viewer_cannot_end_the_lesson_from_the_page(lesson: Lesson) -> None:
    viewer = client_for(_audience_classroom(lesson))

    assert viewer.post(reverse("live:end", args=[lesson.pk])).status_code == 403
    assert client_for(lesson.teacher).get(reverse("live:end", args=[lesson.pk])).status_code == 405
    lesson.refresh_from_db()
    assert lesson.state == Lesson.State.SCHEDULED


# --- home page -----------------------------------------------------------------------------------------


def test_the_home_page_lists_a_lesson_for_its_audience_only(lesson: Lesson) -> None:
    audience = client_for(_audience_classroom(lesson)).get(reverse("home"))
    outsider = client_for(factories.classroom_account()).get(reverse("home"))

    assert audience.status_code == outsider.status_code == 200
    assert "分数的初步认识" in audience.content.decode()
    assert "分数的初步认识" not in outsider.content.decode()
