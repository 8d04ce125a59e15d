"""The Django admin as the demo coordinator uses it: every page loads, role changes are audited."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from outreach.models import AuditEvent, Profile

pytestmark = pytest.mark.django_db

ADMIN_MODELS = [
    "outreach/district",
    "outreach/school",
    "outreach/classroom",
    "outreach/schoolpartnership",
    "outreach/subject",
    "outreach/grade",
    "outreach/profile",
    "outreach/auditevent",
    "courseware/recordedclass",
    "live/lesson",
    "live/attendance",
    "live/mediaworker",
    "live/recordingpiece",
]


@pytest.fixture
def coordinator_client() -> Client:
    call_command("demo", stdout=StringIO())
    client = Client()
    assert client.login(username="coordinator", password="jinshi-demo")
    return client


@pytest.mark.parametrize("model", ADMIN_MODELS)
def test_every_admin_list_page_loads_for_the_coordinator(coordinator_client: Client, model: str) -> None:
    response = coordinator_client.get(f"/admin/{model}/")

    assert response.status_code == 200


def test_the_admin_index_and_a_profile_change_page_load_for_the_coordinator(coordinator_client: Client) -> None:
    profile = Profile.objects.get(user__username="teacher")

    assert coordinator_client.get(reverse("admin:index")).status_code == 200
    page = coordinator_client.get(reverse("admin:outreach_profile_change", args=[profile.pk]))
    assert page.status_code == 200
    assert profile.display_name in page.content.decode()


def test_the_audit_log_cannot_be_added_to_from_the_admin(coordinator_client: Client) -> None:
    assert coordinator_client.get(reverse("admin:outreach_auditevent_add")).status_code == 403


def test_changing_a_role_in_the_admin_saves_it_and_writes_an_audit_event(coordinator_client: Client) -> None:
    profile = Profile.objects.get(user__username="shiqu_teacher")
    coordinator = get_user_model().objects.get(username="coordinator")
    form = {
        "user": profile.user_id,
        "display_name": profile.display_name,
        "role": Profile.Role.COORDINATOR,
        "school": profile.school_id or "",
        "classroom": "",
        "languages": json.dumps(profile.languages),
        "_save": "Save",
    }

    response = coordinator_client.post(reverse("admin:outreach_profile_change", args=[profile.pk]), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    assert Profile.objects.get(pk=profile.pk).role == Profile.Role.COORDINATOR
    event = AuditEvent.objects.get(action="profile.role_changed")
    assert event.actor_id == coordinator.pk
    assert event.target_id == str(profile.pk)
    assert event.extra == {"from": "teacher", "to": "coordinator"}
    assert event.ip == "127.0.0.1"


def test_the_admin_is_closed_to_a_teacher() -> None:
    call_command("demo", stdout=StringIO())
    client = Client()
    assert client.login(username="teacher", password="jinshi-demo")

    response = client.get("/admin/outreach/profile/")

    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
