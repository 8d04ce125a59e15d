"""The permission-checked video endpoint on local storage: whole files, byte ranges, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from courseware.models import RecordedClass
from courseware.services import recorded_class_create
from tests import factories

pytestmark = pytest.mark.django_db

VIDEO_SIZE = 150_000  # larger than one 64 KiB streaming chunk


@pytest.fixture
def video_bytes() -> bytes:
    return os.urandom(VIDEO_SIZE)


@pytest.fixture
def item(tmp_path: Path, video_bytes: bytes) -> RecordedClass:
    source = tmp_path / "lesson-1.webm"
    source.write_bytes(video_bytes)
    return recorded_class_create(
        title="分数的初步认识",
        subject=None,
        grade=None,
        teacher=None,
        video_path=source,
        poster_path=None,
        duration_s=6.0,
        frame_count=150,
        width=320,
        height=180,
        has_audio=True,
    )


@pytest.fixture
def classroom_client() -> Client:
    client = Client()
    client.force_login(factories.classroom_account())
    return client


def _video_url(item_id: int) -> str:
    return reverse("courseware:video", args=[item_id])


def _body(response: object) -> bytes:
    content = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    response.close()  # type: ignore[attr-defined]
    return content


def test_the_whole_video_is_served_with_accept_ranges(
    classroom_client: Client, item: RecordedClass, video_bytes: bytes
) -> None:
    response = classroom_client.get(_video_url(item.pk))

    assert response.status_code == 200
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Length"] == str(VIDEO_SIZE)
    assert response["Content-Type"] == "video/webm"
    assert "Content-Range" not in response
    assert _body(response) == video_bytes


def test_a_byte_range_is_served_as_206_with_exactly_those_bytes(
    classroom_client: Client, item: RecordedClass, video_bytes: bytes
) -> None:
    response = classroom_client.get(_video_url(item.pk), headers={"Range": "bytes=0-99"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-99/{VIDEO_SIZE}"
    assert response["Content-Length"] == "100"
    body = _body(response)
    assert len(body) == 100
    assert body == video_bytes[:100]


def test_a_range_across_chunks_near_the_end_gives_the_right_bytes(
    classroom_client: Client, item: RecordedClass, video_bytes: bytes
) -> None:
    response = classroom_client.get(_video_url(item.pk), headers={"Range": "bytes=60000-"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 60000-{VIDEO_SIZE - 1}/{VIDEO_SIZE}"
    assert _body(response) == video_bytes[60000:]


def test_a_range_past_the_end_is_416_with_the_size(classroom_client: Client, item: RecordedClass) -> None:
    response = classroom_client.get(_video_url(item.pk), headers={"Range": f"bytes={VIDEO_SIZE}-"})

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{VIDEO_SIZE}"


def test_an_anonymous_visitor_is_sent_to_the_login_page(item: RecordedClass) -> None:
    response = Client().get(_video_url(item.pk))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_an_account_without_a_profile_is_refused_with_403(item: RecordedClass) -> None:
    client = Client()
    client.force_login(factories.user())

    assert client.get(_video_url(item.pk)).status_code == 403


def test_an_unknown_item_is_404(classroom_client: Client, item: RecordedClass) -> None:
    assert classroom_client.get(_video_url(item.pk + 1000)).status_code == 404


def test_an_item_without_a_poster_has_no_poster_to_serve(classroom_client: Client, item: RecordedClass) -> None:
    assert classroom_client.get(reverse("courseware:poster", args=[item.pk])).status_code == 404


def test_the_library_and_item_pages_list_the_recording(classroom_client: Client, item: RecordedClass) -> None:
    library = classroom_client.get(reverse("courseware:library"))
    page = classroom_client.get(reverse("courseware:recorded_class", args=[item.pk]))

    assert library.status_code == 200
    assert item.title in library.content.decode()
    assert page.status_code == 200
    assert _video_url(item.pk) in page.content.decode()
