"""The demo data command: loads a usable platform once, changes nothing the second time."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import models
from django.test import override_settings

from live.models import Lesson
from outreach.models import AuditEvent, Classroom, District, Grade, Profile, School, SchoolPartnership, Subject

pytestmark = pytest.mark.django_db

COUNTED: list[type[models.Model]] = [
    District,
    School,
    Classroom,
    SchoolPartnership,
    Subject,
    Grade,
    get_user_model(),
    Profile,
    Lesson,
    AuditEvent,
]


def _row_counts() -> dict[str, int]:
    counts = {model._meta.label: model.objects.count() for model in COUNTED}
    lesson = Lesson.objects.first()
    counts["audience"] = (
        0 if lesson is None else (lesson.audience_classrooms.count() + lesson.audience_teachers.count())
    )
    return counts


def _run_demo() -> str:
    out = StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


def test_the_demo_command_loads_the_platform_and_a_second_run_creates_nothing() -> None:
    first = _run_demo()
    after_first = _row_counts()
    second = _run_demo()

    assert "(0 new records)" not in first
    assert after_first[District._meta.label] == 2
    assert after_first[Lesson._meta.label] == 1
    assert after_first["audience"] == 3
    assert Profile.objects.get(user__username="coordinator").role == Profile.Role.COORDINATOR
    assert get_user_model().objects.get(username="teacher").check_password("jinshi-demo")
    assert "(0 new records)" in second
    assert _row_counts() == after_first


@override_settings(SETTINGS_MODULE="outreach.settings.production")
def test_the_demo_command_refuses_to_run_on_production_settings() -> None:
    with pytest.raises(CommandError, match="production"):
        _run_demo()

    assert District.objects.count() == 0
    assert get_user_model().objects.count() == 0
