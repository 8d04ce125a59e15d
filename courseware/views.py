"""Library pages and the permission-checked media endpoints."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from outreach.errors import NotAllowed, NotFound

from .models import RecordedClass
from .ranges import ranged_file_response
from .selectors import recorded_class_get_for_viewer, recorded_class_list


def _get(request: HttpRequest, item_id: int) -> RecordedClass:
    try:
        return recorded_class_get_for_viewer(user=request.user, item_id=item_id)
    except NotFound as exc:
        raise Http404(exc.message) from exc
    except NotAllowed as exc:
        raise PermissionDenied(exc.message) from exc


def _is_local_storage() -> bool:
    return default_storage.__class__.__name__ == "FileSystemStorage"


def _serve(request: HttpRequest, name: str, content_type: str) -> HttpResponse | StreamingHttpResponse:
    if not name:
        raise Http404
    if not _is_local_storage():
        # Object storage: a short-lived presigned URL (S3 answers Range itself); the object stays private.
        return HttpResponseRedirect(default_storage.url(name))
    try:
        size = default_storage.size(name)
        handle = default_storage.open(name, "rb")
    except FileNotFoundError as exc:
        raise Http404 from exc
    response = ranged_file_response(
        handle, size=size, content_type=content_type, range_header=request.headers.get("Range")
    )
    response["Cache-Control"] = "private, max-age=300"
    return response


@login_required
@require_GET
def library_page(request: HttpRequest) -> HttpResponse:
    items = recorded_class_list(user=request.user)
    return render(request, "courseware/library.html", {"items": items})


@login_required
@require_GET
def recorded_class_page(request: HttpRequest, item_id: int) -> HttpResponse:
    return render(request, "courseware/recorded_class.html", {"item": _get(request, item_id)})


@login_required
@require_GET
def recorded_class_video(request: HttpRequest, item_id: int) -> HttpResponse | StreamingHttpResponse:
    item = _get(request, item_id)
    return _serve(request, item.video.name or "", item.content_type)


@login_required
@require_GET
def recorded_class_poster(request: HttpRequest, item_id: int) -> HttpResponse | StreamingHttpResponse:
    item = _get(request, item_id)
    return _serve(request, item.poster.name or "", "image/jpeg")
