"""Lesson pages: schedule, broadcast (teacher), watch (classrooms and teachers), end."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from outreach.errors import DomainError
from outreach.selectors import user_is_coordinator, user_role

from .errors import LessonNotAllowed, LessonNotFound
from .forms import LessonScheduleForm
from .models import Lesson
from .selectors import lesson_get_for_participant
from .services import lesson_end, lesson_schedule


def _client_texts() -> dict[str, str]:
    """Status words the browser code shows (translated here, so the JS holds no UI strings)."""
    return {
        "waiting": _("等待上课"),
        "connecting": _("正在连接"),
        "live": _("直播中"),
        "reconnecting": _("正在重新连接"),
        "ended": _("课程已结束"),
        "camera": _("正在打开摄像头……"),
        "camera_failed": _("无法打开摄像头或麦克风：请检查设备和浏览器权限。"),
        "ready": _("准备就绪，点击“开始直播”。"),
        "publishing": _("正在开播……"),
        "on_air": _("直播中"),
        "republishing": _("网络中断，正在重新开播……"),
        "end_confirm": _("确定结束这节课吗？结束后录像会进入资源库。"),
        "not_allowed": _("您没有进入这节课的权限。"),
        "not_found": _("找不到这节课。"),
        "signed_out": _("登录已失效，请重新登录。"),
        "error": _("出错了"),
    }


def _lesson(request: HttpRequest, lesson_id: int) -> tuple[Lesson, str]:
    try:
        return lesson_get_for_participant(user=request.user, lesson_id=lesson_id)
    except LessonNotFound as exc:
        raise Http404(exc.message) from exc
    except LessonNotAllowed as exc:
        raise PermissionDenied(exc.message) from exc


@login_required
@require_http_methods(["GET", "POST"])
def schedule_page(request: HttpRequest) -> HttpResponse:
    if user_role(request.user) not in ("teacher", "coordinator"):
        raise PermissionDenied(_("只有教师和协调员可以安排课程。"))
    is_coordinator = user_is_coordinator(request.user)
    form = LessonScheduleForm(request.POST or None, is_coordinator=is_coordinator)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            lesson = lesson_schedule(
                actor=request.user,  # type: ignore[arg-type]  # login_required
                title=data["title"],
                subject=data["subject"],
                grade=data["grade"],
                scheduled_at=data["scheduled_at"],
                classrooms=data["classrooms"],
                teachers=data["teachers"],
                teacher=data.get("teacher"),
            )
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, _("已安排课程《%(title)s》。") % {"title": lesson.title})
            return redirect("home")
    status = 400 if request.method == "POST" else 200
    return render(request, "live/schedule.html", {"form": form}, status=status)


@login_required
def broadcast_page(request: HttpRequest, lesson_id: int) -> HttpResponse:
    lesson, role = _lesson(request, lesson_id)
    if role != "publisher":
        raise PermissionDenied(_("只有本课的授课教师可以开播。"))
    return render(request, "live/broadcast.html", {"lesson": lesson, "texts": _client_texts()})


@login_required
def watch_page(request: HttpRequest, lesson_id: int) -> HttpResponse:
    lesson, _role = _lesson(request, lesson_id)
    return render(request, "live/watch.html", {"lesson": lesson, "texts": _client_texts()})


@login_required
@require_POST
def end_lesson(request: HttpRequest, lesson_id: int) -> HttpResponse:
    _lesson(request, lesson_id)
    try:
        lesson_end(lesson_id=lesson_id, actor=request.user, ip=request.META.get("REMOTE_ADDR"))  # type: ignore[arg-type]
    except DomainError as exc:
        raise PermissionDenied(exc.message) from exc
    messages.success(request, _("课程已结束，录像正在处理。"))
    return redirect("home")
