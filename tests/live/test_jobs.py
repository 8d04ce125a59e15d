"""The durable recording job: a job orphaned by a killed worker is queued again and then really runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from courseware.models import RecordedClass
from live.models import Lesson, RecordingPiece
from live.tasks import finalise_recording
from outreach.management.commands.jobs_worker import requeue_orphaned_jobs
from tests import factories
from tests.live.jobs_scenario import dead_pid

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
HOST = socket.gethostname()[:40]


def _claimed_job(worker_id: str, started_at: dt.datetime | None = None) -> DBTaskResult:
    lesson = factories.lesson(classrooms=[factories.classroom()])
    result = finalise_recording.enqueue(lesson.pk)
    DBTaskResult.objects.filter(pk=result.id).update(
        status=TaskResultStatus.RUNNING, started_at=started_at or timezone.now(), worker_ids=[worker_id]
    )
    return DBTaskResult.objects.get(pk=result.id)


def test_a_job_claimed_by_a_worker_that_died_on_this_host_is_queued_again() -> None:
    job = _claimed_job(f"{HOST}:{dead_pid()}")

    assert requeue_orphaned_jobs() == 1

    job.refresh_from_db()
    assert job.status == TaskResultStatus.READY
    assert job.started_at is None
    assert DBTaskResult.objects.ready().filter(pk=job.pk).exists()  # what a worker will claim next


def test_a_job_of_a_worker_that_is_still_running_is_left_alone() -> None:
    job = _claimed_job(f"{HOST}:{os.getppid()}")  # a process that is alive, and not this worker

    assert requeue_orphaned_jobs() == 0

    job.refresh_from_db()
    assert job.status == TaskResultStatus.RUNNING


def test_a_job_held_under_this_very_worker_id_is_queued_again() -> None:
    # A restarted container keeps its hostname and may give the new worker the dead one's pid.
    job = _claimed_job(f"{HOST}:{os.getpid()}")

    assert requeue_orphaned_jobs() == 1

    job.refresh_from_db()
    assert job.status == TaskResultStatus.READY


def test_a_job_on_another_host_is_queued_again_only_once_it_is_stale(settings: Any) -> None:
    settings.JOBS_STALE_AFTER_SECONDS = 600
    recent = _claimed_job("other-host:4242")
    stale = _claimed_job("other-host:4343", started_at=timezone.now() - dt.timedelta(seconds=700))

    assert requeue_orphaned_jobs() == 1

    recent.refresh_from_db()
    stale.refresh_from_db()
    assert recent.status == TaskResultStatus.RUNNING
    assert stale.status == TaskResultStatus.READY


def _embedded_env(var_dir: Path) -> dict[str, str]:
    env = {**os.environ, "JINSHI_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "outreach.settings.dev"}
    for name in ("DATABASE_URL", "REDIS_URL", "S3_BUCKET", "MEDIA_ROOT", "MEDIA_SPOOL_DIR", "PYTEST_ADDOPTS"):
        env.pop(name, None)
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result


@pytest.mark.timeout(180)
def test_a_restarted_job_worker_process_finishes_the_orphaned_recording_job(tmp_path: Path) -> None:
    pytest.importorskip("live.media.recording")
    env = _embedded_env(tmp_path)
    setup = _run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from tests.live.jobs_scenario import main; main()",
        ],
        env,
    )
    ids = json.loads(setup.stdout.strip().splitlines()[-1])

    worker = _run([sys.executable, "manage.py", "jobs_worker", "--batch", "--interval", "0.1"], env)

    assert "re-queued 1 job(s) orphaned by a dead worker" in worker.stdout
    database = sqlite3.connect(tmp_path / "jinshi.sqlite3")
    try:
        status, return_value, worker_ids = database.execute(
            f"SELECT status, return_value, worker_ids FROM {DBTaskResult._meta.db_table} WHERE id = ?",
            [ids["job"].replace("-", "")],
        ).fetchone()
        item_id, recording_state = database.execute(
            f"SELECT recording_item_id, recording_state FROM {Lesson._meta.db_table} WHERE id = ?", [ids["lesson"]]
        ).fetchone()
        video, frame_count = database.execute(
            f"SELECT video, frame_count FROM {RecordedClass._meta.db_table} WHERE id = ?", [item_id]
        ).fetchone()
        pieces_left = database.execute(f"SELECT COUNT(*) FROM {RecordingPiece._meta.db_table}").fetchone()[0]
    finally:
        database.close()
    assert status == TaskResultStatus.SUCCESSFUL
    assert json.loads(return_value) == item_id
    assert len(json.loads(worker_ids)) == 2  # the dead worker's claim, then the restarted one's
    assert recording_state == "ready"
    assert abs(frame_count - 100) <= 2
    assert (tmp_path / "media" / video).is_file()
    assert pieces_left == 0
