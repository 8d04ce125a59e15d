"""Shared fixtures: real services (PostgreSQL, Redis, an S3 server), storage switching, lesson sockets.

Nothing here is mocked. A service that is not reachable skips its tests locally and fails them in CI
(``CI=true``), so that a green CI run means every service was really exercised.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import pytest_asyncio
from django.conf import settings as django_settings

IN_CI = os.environ.get("CI") == "true"
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SOCKET_TIMEOUT = 5.0  # seconds a test waits for one WebSocket frame before it fails


def pytest_report_header(config: pytest.Config) -> str:
    # Lets a parent run (tests/live/test_postgres.py) check which database the child suite really used.
    return f"jinshi database engine: {django_settings.DATABASES['default']['ENGINE']}"


def service_missing(message: str) -> None:
    """Skip locally, fail in CI: CI must exercise every real service."""
    if IN_CI:
        pytest.fail(f"{message} (CI needs it)")
    pytest.skip(message)


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- real services ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_url() -> str:
    import psycopg

    url = os.environ.get("JINSHI_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        service_missing(f"PostgreSQL not reachable at {_redacted(url)}: {exc}")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = os.environ.get("JINSHI_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis not reachable at {_redacted(url)}: {exc}")
    finally:
        client.close()
    return url


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(signature_version="s3v4"),
        )

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (the bucket's real content, listed over HTTP)."""
        paginator = self.client().get_paginator("list_objects_v2")
        return [
            item["Key"]
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix)
            for item in page.get("Contents", [])
        ]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server over real HTTP on 127.0.0.1, with one private bucket."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = S3Server(
            endpoint_url=f"http://127.0.0.1:{port}",
            bucket="jinshi-test-media",
            access_key="jinshi-test-key",
            secret_key="jinshi-test-secret",
        )
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()


@dataclass(frozen=True)
class S3Storage:
    server: S3Server
    prefix: str  # every object this test stores lives under this key prefix

    def keys(self) -> list[str]:
        return self.server.keys(self.prefix)


@pytest.fixture
def s3_storage(s3_server: S3Server, settings: Any) -> Iterator[S3Storage]:
    """Django's default storage switched to S3Storage against the moto server, for one test.

    Assigning STORAGES through pytest-django's ``settings`` sends ``setting_changed``; Django's own
    handler then drops the cached ``storages`` backends and resets the ``default_storage`` proxy, both
    now and when the fixture restores the old value.
    """
    from django.core.files.storage import default_storage

    prefix = f"t-{uuid.uuid4().hex[:12]}"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": s3_server.bucket,
                "endpoint_url": s3_server.endpoint_url,
                "access_key": s3_server.access_key,
                "secret_key": s3_server.secret_key,
                "region_name": s3_server.region,
                "signature_version": "s3v4",
                "default_acl": None,
                "querystring_auth": True,
                "querystring_expire": 300,
                "file_overwrite": False,
                "location": prefix,
            },
        },
    }
    assert default_storage.__class__.__name__ == "S3Storage"
    yield S3Storage(server=s3_server, prefix=prefix)


@pytest.fixture(autouse=True)
def _private_media_root(settings: Any, tmp_path: Path) -> Path:
    """Local storage and the media spool in this test's own directory, never in the project's var/."""
    media = tmp_path / "media"
    spool = tmp_path / "spool"
    media.mkdir()
    spool.mkdir()
    settings.MEDIA_ROOT = media
    settings.MEDIA_SPOOL_DIR = spool
    return media


# --- lesson WebSockets -------------------------------------------------------------------------------

SocketOpener = Callable[..., Awaitable[Any]]


def session_cookie(user: Any) -> bytes:
    """A ``Cookie`` header value for a logged-in session of ``user`` (sync: touches the database)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    name = django_settings.SESSION_COOKIE_NAME
    return f"{name}={client.cookies[name].value}".encode()


async def stop_inprocess_media_worker() -> None:
    """Stop the media worker a consumer started inside this event loop (each test has its own loop)."""
    import live.worker as worker_module

    task = worker_module._inprocess_task
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(task, timeout=SOCKET_TIMEOUT)
    worker_module._inprocess = None
    worker_module._inprocess_task = None


def reset_channel_layers() -> None:
    # In-memory layer queues belong to one event loop; every test gets fresh ones.
    from channels.layers import channel_layers

    channel_layers.backends = {}


async def close_channel_layers() -> None:
    """Drop this test's channel layers; a Redis layer's keys (its own prefix) and connections go too."""
    from channels.layers import channel_layers

    for layer in list(channel_layers.backends.values()):
        if hasattr(layer, "close_pools"):
            with contextlib.suppress(Exception):
                await layer.flush()
            await layer.close_pools()
    reset_channel_layers()


@pytest_asyncio.fixture
async def lesson_socket(transactional_db: None) -> AsyncIterator[SocketOpener]:
    """Open lesson WebSockets through the project's real ASGI stack (origin check, session auth, router).

    ``await lesson_socket(lesson_id, user=None, origin=b"http://127.0.0.1")`` returns a not yet connected
    ``WebsocketCommunicator``. Sockets, the in-process media worker and the channel layer are cleaned up
    after the test.
    """
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from outreach.asgi import application

    reset_channel_layers()
    opened: list[WebsocketCommunicator] = []

    async def open_socket(
        lesson_id: int, *, user: Any = None, origin: bytes | None = b"http://127.0.0.1", query: str = ""
    ) -> WebsocketCommunicator:
        headers: list[tuple[bytes, bytes]] = []
        if origin is not None:
            headers.append((b"origin", origin))
        if user is not None:
            headers.append((b"cookie", await database_sync_to_async(session_cookie)(user)))
        path = f"/ws/lessons/{lesson_id}/" + (f"?{query}" if query else "")
        communicator = WebsocketCommunicator(application, path, headers=headers)
        opened.append(communicator)
        return communicator

    yield open_socket

    for communicator in opened:
        with contextlib.suppress(BaseException):
            await communicator.disconnect(timeout=SOCKET_TIMEOUT)
    await stop_inprocess_media_worker()
    await close_channel_layers()
