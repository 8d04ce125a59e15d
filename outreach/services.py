"""Writes of the foundation layer: the audit log and role changes."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import models, transaction

from .models import AuditEvent, Profile


def audit_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model,
    ip: str | None = None,
    extra: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one audit event. ``extra`` must never carry personal data of pupils."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        target_type=target._meta.label_lower,
        target_id=str(target.pk),
        ip=ip or None,
        extra=extra or {},
    )


@transaction.atomic
def profile_set_role(*, actor: User, profile: Profile, role: str, ip: str | None = None) -> Profile:
    """Change a person's role and audit it (from the admin or a coordinator page)."""
    if role not in Profile.Role.values:
        from .errors import InvalidInput

        raise InvalidInput(f"unknown role {role!r}")
    previous = profile.role
    if previous == role:
        return profile
    profile.role = role
    profile.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="profile.role_changed",
        target=profile,
        ip=ip,
        extra={"from": previous, "to": role},
    )
    return profile
