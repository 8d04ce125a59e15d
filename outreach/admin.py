"""Django admin for coordinators: reference data and people. Role changes go through the audited service."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import AuditEvent, Classroom, District, Grade, Profile, School, SchoolPartnership, Subject
from .services import profile_set_role


@admin.register(District)
class DistrictAdmin(admin.ModelAdmin):
    list_display = ["name", "name_en", "side", "code"]


@admin.register(School)
class SchoolAdmin(admin.ModelAdmin):
    list_display = ["name", "district", "code"]
    list_filter = ["district"]
    search_fields = ["name", "name_en", "code"]


@admin.register(Classroom)
class ClassroomAdmin(admin.ModelAdmin):
    list_display = ["name", "school"]
    list_filter = ["school__district"]


@admin.register(SchoolPartnership)
class SchoolPartnershipAdmin(admin.ModelAdmin):
    list_display = ["supporting", "supported", "since"]


admin.site.register(Subject)
admin.site.register(Grade)


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["display_name", "user", "role", "school", "classroom"]
    list_filter = ["role", "school__district"]
    search_fields = ["display_name", "user__username"]

    def save_model(self, request: HttpRequest, obj: Profile, form: Any, change: bool) -> None:
        new_role = obj.role
        if change:
            obj.role = Profile.objects.get(pk=obj.pk).role
        super().save_model(request, obj, form, change)
        if change:
            profile_set_role(
                actor=request.user,  # type: ignore[arg-type]  # admin requests are authenticated
                profile=obj,
                role=new_role,
                ip=request.META.get("REMOTE_ADDR"),
            )


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["at", "actor", "action", "target_type", "target_id", "ip"]
    list_filter = ["action"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
