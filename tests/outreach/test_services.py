"""The foundation's writes: the audit log and audited role changes."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from outreach.errors import InvalidInput
from outreach.models import AuditEvent, Profile
from outreach.services import audit_record, profile_set_role
from tests import factories

pytestmark = pytest.mark.django_db


def test_audit_record_writes_who_did_what_to_which_record_and_from_where() -> None:
    actor = factories.coordinator()
    school = factories.school()

    event = audit_record(actor=actor, action="school.renamed", target=school, ip="10.0.0.7", extra={"n": 1})

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor_id == actor.pk
    assert stored.action == "school.renamed"
    assert (stored.target_type, stored.target_id) == ("outreach.school", str(school.pk))
    assert stored.ip == "10.0.0.7"
    assert stored.extra == {"n": 1}
    assert stored.at is not None


def test_audit_record_stores_no_actor_for_the_system_or_an_anonymous_user() -> None:
    school = factories.school()

    by_system = audit_record(actor=None, action="system.thing", target=school)
    by_anonymous = audit_record(actor=AnonymousUser(), action="anon.thing", target=school)  # type: ignore[arg-type]

    assert AuditEvent.objects.get(pk=by_system.pk).actor_id is None
    assert AuditEvent.objects.get(pk=by_anonymous.pk).actor_id is None
    assert AuditEvent.objects.get(pk=by_anonymous.pk).ip is None


def test_changing_a_role_saves_it_and_writes_one_audit_event() -> None:
    actor = factories.coordinator()
    person = factories.teacher()
    profile = Profile.objects.get(user=person)

    profile_set_role(actor=actor, profile=profile, role=Profile.Role.COORDINATOR, ip="192.0.2.1")

    assert Profile.objects.get(pk=profile.pk).role == Profile.Role.COORDINATOR
    event = AuditEvent.objects.get(action="profile.role_changed")
    assert event.actor_id == actor.pk
    assert event.target_id == str(profile.pk)
    assert event.extra == {"from": "teacher", "to": "coordinator"}
    assert event.ip == "192.0.2.1"


def test_setting_the_same_role_again_writes_no_audit_event() -> None:
    actor = factories.coordinator()
    profile = Profile.objects.get(user=factories.teacher())

    profile_set_role(actor=actor, profile=profile, role=Profile.Role.TEACHER)

    assert not AuditEvent.objects.filter(action="profile.role_changed").exists()


def test_an_unknown_role_is_refused_and_nothing_is_written() -> None:
    actor = factories.coordinator()
    profile = Profile.objects.get(user=factories.teacher())

    with pytest.raises(InvalidInput):
        profile_set_role(actor=actor, profile=profile, role="headmaster")

    assert Profile.objects.get(pk=profile.pk).role == Profile.Role.TEACHER
    assert AuditEvent.objects.count() == 0
