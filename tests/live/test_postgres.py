"""The lesson services on PostgreSQL for real: the unit suite runs on SQLite, production on PostgreSQL.

A child pytest run executes tests/live/test_services.py (schedule → go live → attendance → end → pieces)
with DATABASE_URL pointing at PostgreSQL, so pytest-django creates its test database there.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.services


def _own_database(url: str) -> str:
    # pytest-django creates "test_<NAME>"; a name of our own keeps parallel runs from dropping each other's.
    return urlunsplit(urlsplit(url)._replace(path=f"/jinshi_{os.getpid()}"))


def test_the_lesson_services_pass_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": _own_database(postgres_url),
        "DJANGO_SETTINGS_MODULE": "outreach.settings.test",
        "JINSHI_VAR_DIR": str(tmp_path),
    }
    for name in ("REDIS_URL", "S3_BUCKET", "PYTEST_ADDOPTS"):
        env.pop(name, None)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "tests/live/test_services.py",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "--create-db",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "jinshi database engine: django.db.backends.postgresql" in output
    summary = re.search(r"(\d+) passed", output)
    assert summary is not None and int(summary.group(1)) >= 30, output[-2000:]
    assert "skipped" not in output.splitlines()[-1]
