"""The library on object storage (moto's S3 server over real HTTP) and on local disk: files and rows are
written together or not at all; viewers get short-lived presigned URLs that honour Range."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest
import requests
from django.core.files.storage import default_storage, storages
from django.test import Client
from django.urls import reverse

from courseware import services
from courseware.models import RecordedClass
from courseware.services import recorded_class_create
from outreach.models import AuditEvent
from tests import factories
from tests.conftest import S3Storage

pytestmark = [pytest.mark.django_db, pytest.mark.services]

VIDEO_SIZE = 100_000


def _create(tmp_path: Path, video: bytes, *, poster: bytes | None = b"\xff\xd8poster\xff\xd9") -> RecordedClass:
    source = tmp_path / "lesson-7.webm"
    source.write_bytes(video)
    poster_path = None
    if poster is not None:
        poster_path = tmp_path / "poster.jpg"
        poster_path.write_bytes(poster)
    return recorded_class_create(
        title="藏语文 · 第三课",
        subject=factories.subject(),
        grade=factories.grade(),
        teacher=factories.teacher(),
        video_path=source,
        poster_path=poster_path,
        duration_s=6.0,
        frame_count=150,
        width=320,
        height=180,
        has_audio=True,
    )


def _local_files(media_root: Path) -> list[Path]:
    return [path for path in media_root.rglob("*") if path.is_file()]


def test_a_recorded_class_is_stored_in_the_bucket(s3_storage: S3Storage, tmp_path: Path) -> None:
    video = os.urandom(VIDEO_SIZE)

    item = _create(tmp_path, video)

    keys = s3_storage.keys()
    assert f"{s3_storage.prefix}/{item.video.name}" in keys
    assert f"{s3_storage.prefix}/{item.poster.name}" in keys
    assert len(keys) == 2
    stored = s3_storage.server.client().get_object(
        Bucket=s3_storage.server.bucket, Key=f"{s3_storage.prefix}/{item.video.name}"
    )
    assert stored["Body"].read() == video
    assert item.size_bytes == VIDEO_SIZE
    assert AuditEvent.objects.filter(action="recording.published", target_id=str(item.pk)).exists()


def test_the_video_view_redirects_to_a_short_lived_presigned_url_that_serves_ranges(
    s3_storage: S3Storage, tmp_path: Path
) -> None:
    video = os.urandom(VIDEO_SIZE)
    item = _create(tmp_path, video)
    client = Client()
    client.force_login(factories.classroom_account())

    response = client.get(reverse("courseware:video", args=[item.pk]))

    assert response.status_code == 302
    url = response["Location"]
    assert url.startswith(s3_storage.server.endpoint_url)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Signature"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert 0 < int(query["X-Amz-Expires"][0]) <= 600

    ranged = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert ranged.status_code == 206
    assert ranged.content == video[:100]
    assert ranged.headers["Content-Range"] == f"bytes 0-99/{VIDEO_SIZE}"

    tail = requests.get(url, headers={"Range": "bytes=-10"}, timeout=10)
    assert tail.status_code == 206
    assert tail.content == video[-10:]

    unsigned = urlunsplit(urlsplit(url)._replace(query=""))
    assert requests.get(unsigned, timeout=10).status_code == 403


def test_the_poster_view_redirects_to_a_presigned_url_too(s3_storage: S3Storage, tmp_path: Path) -> None:
    item = _create(tmp_path, os.urandom(1000), poster=b"\xff\xd8a poster\xff\xd9")
    client = Client()
    client.force_login(factories.teacher())

    response = client.get(reverse("courseware:poster", args=[item.pk]))

    assert response.status_code == 302
    assert requests.get(response["Location"], timeout=10).content == b"\xff\xd8a poster\xff\xd9"


def _fail_on_poster_save(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = storages["default"]
    original: Callable[[str, Any], str] = backend._save

    def save(name: str, content: Any) -> str:
        if name.startswith("posters/"):
            raise OSError("storage refused the poster")
        return original(name, content)

    monkeypatch.setattr(backend, "_save", save)


def _fail_on_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    def audit(**kwargs: Any) -> None:
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(services, "audit_record", audit)


FAILURES = {"the poster save": _fail_on_poster_save, "the audit write": _fail_on_audit}


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_create_that_fails_half_way_leaves_no_row_and_no_file_in_the_bucket(
    s3_storage: S3Storage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Callable[..., None]
) -> None:
    failure(monkeypatch)

    with pytest.raises((OSError, RuntimeError)):
        _create(tmp_path, os.urandom(VIDEO_SIZE))

    assert RecordedClass.objects.count() == 0
    assert s3_storage.keys() == []


@pytest.mark.parametrize("failure", FAILURES.values(), ids=FAILURES.keys())
def test_a_create_that_fails_half_way_leaves_no_row_and_no_file_on_local_disk(
    _private_media_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Callable[..., None]
) -> None:
    assert default_storage.__class__.__name__ == "FileSystemStorage"
    failure(monkeypatch)

    with pytest.raises((OSError, RuntimeError)):
        _create(tmp_path, os.urandom(VIDEO_SIZE))

    assert RecordedClass.objects.count() == 0
    assert _local_files(_private_media_root) == []
