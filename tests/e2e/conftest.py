"""Fixtures for browser journeys: Playwright on Debian's Chromium, the real clip as camera, services."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Playwright, sync_playwright

from tests.support.media import make_y4m_and_wav

from .harness import CHROMIUM

IN_CI = os.environ.get("CI") == "true"


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(f"{what} (CI needs it)")
    pytest.skip(what)


# Module scope, not session: sync Playwright keeps an asyncio loop running in the main thread while it is
# open, and pytest-asyncio tests collected after the journeys would then fail with "cannot be called from
# a running event loop".
@pytest.fixture(scope="module")
def playwright_session() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def camera_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Big Buck Bunny as the teacher's camera and microphone (640x360, 25 fps, looped by Chromium)."""
    return make_y4m_and_wav(tmp_path_factory.mktemp("camera"), width=640, height=360, fps=25, seconds=8)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture
def postgres_admin_url() -> str:
    url = os.environ.get("JINSHI_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432/test")
    if not _reachable("127.0.0.1", 5432):
        _missing("PostgreSQL not reachable at 127.0.0.1:5432")
    return url


@pytest.fixture
def redis_test_url() -> str:
    url = os.environ.get("JINSHI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if not _reachable("127.0.0.1", 6379):
        _missing("Redis not reachable at 127.0.0.1:6379")
    return url
