"""Reads of the foundation layer: people, roles and schools."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from .models import Classroom, Grade, Profile, Subject

AnyUser = AbstractBaseUser | AnonymousUser


def profile_for(user: AnyUser) -> Profile | None:
    """The user's profile, or None for anonymous users and accounts without one (e.g. a bare superuser)."""
    if not user.is_authenticated:
        return None
    try:
        return Profile.objects.select_related("school__district", "classroom__school").get(user_id=user.pk)
    except Profile.DoesNotExist:
        return None


def user_is_coordinator(user: AnyUser) -> bool:
    if not user.is_authenticated:
        return False
    if getattr(user, "is_superuser", False):
        return True
    return Profile.objects.filter(user_id=user.pk, role=Profile.Role.COORDINATOR).exists()


def user_role(user: AnyUser) -> str | None:
    profile = profile_for(user)
    if profile is not None:
        return profile.role
    if getattr(user, "is_superuser", False):
        return Profile.Role.COORDINATOR
    return None


def display_name(user: AnyUser) -> str:
    profile = profile_for(user)
    if profile is not None:
        return profile.display_name
    return str(getattr(user, "username", ""))


def classroom_list() -> QuerySet[Classroom]:
    return Classroom.objects.select_related("school__district").order_by("school__district__code", "school__code")


def subject_list() -> QuerySet[Subject]:
    return Subject.objects.all()


def grade_list() -> QuerySet[Grade]:
    return Grade.objects.all()
