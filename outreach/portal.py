"""The signed-in home page (top layer: it reads every app through their selectors; nothing imports it)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from courseware.selectors import recorded_class_list
from live.selectors import lessons_for_home
from outreach.selectors import profile_for, user_is_coordinator, user_role


@login_required
@require_GET
def home_page(request: HttpRequest) -> HttpResponse:
    role = user_role(request.user)
    lessons = list(lessons_for_home(user=request.user))
    context = {
        "profile": profile_for(request.user),
        "role": role,
        "is_coordinator": user_is_coordinator(request.user),
        "live_lessons": [lesson for lesson in lessons if lesson.state == "live"],
        "upcoming_lessons": [lesson for lesson in lessons if lesson.state == "scheduled"],
        "recent_recordings": list(recorded_class_list(user=request.user)[:6]),
    }
    return render(request, "outreach/home.html", context)


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
