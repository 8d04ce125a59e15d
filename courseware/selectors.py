"""Reads of the library, permission-checked."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from outreach.errors import NotAllowed, NotFound
from outreach.selectors import user_role

from .models import RecordedClass


def _may_use_library(user: AbstractBaseUser | AnonymousUser) -> bool:
    # Every platform role (teacher, classroom, coordinator) may watch recorded classes; recordings show a
    # teacher and a blackboard, never pupils' names.
    return user.is_authenticated and user_role(user) is not None


def recorded_class_list(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[RecordedClass]:
    if not _may_use_library(user):
        return RecordedClass.objects.none()
    return RecordedClass.objects.select_related("subject", "grade").all()


def recorded_class_get_for_viewer(*, user: AbstractBaseUser | AnonymousUser, item_id: int) -> RecordedClass:
    if not _may_use_library(user):
        raise NotAllowed(_("您没有查看资源库的权限。"))
    try:
        return RecordedClass.objects.select_related("subject", "grade").get(pk=item_id)
    except RecordedClass.DoesNotExist as exc:
        raise NotFound(_("找不到这节录播课。")) from exc
