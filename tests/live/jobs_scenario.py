"""Run in a child process by tests/live/test_jobs.py: a lesson whose recording job a dead worker had claimed.

Sets up an embedded-defaults platform in ``JINSHI_VAR_DIR`` (migrated SQLite file, local storage), records
two real pieces, ends the lesson (which queues the job), then marks the job RUNNING under a worker id whose
process is gone, as if the job worker had been killed mid-job. Prints ``{"lesson": id, "job": id}``.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import subprocess
import tempfile
from pathlib import Path

from django.core.management import call_command
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from live.models import Lesson
from live.services import lesson_end
from tests import factories


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def main() -> None:
    call_command("migrate", verbosity=0)
    lesson = factories.lesson(classrooms=[factories.classroom()], title="分数的初步认识（重试）")
    started = timezone.now() - dt.timedelta(minutes=1)
    Lesson.objects.filter(pk=lesson.pk).update(
        state=Lesson.State.LIVE, started_at=started, recording_state=Lesson.RecordingState.PENDING
    )
    with tempfile.TemporaryDirectory() as spool:
        pieces = factories.webm_pieces(Path(spool), started_at=started, count=2, seconds=2.0)
        factories.recording_pieces(lesson_=lesson, pieces=pieces)
    lesson_end(lesson_id=lesson.pk, actor=None, reason="teacher")  # commits, then queues the job
    job = DBTaskResult.objects.get(task_path="live.tasks.finalise_recording")
    DBTaskResult.objects.filter(pk=job.pk).update(
        status=TaskResultStatus.RUNNING,
        started_at=timezone.now(),
        worker_ids=[f"{socket.gethostname()[:40]}:{dead_pid()}"],
    )
    print(json.dumps({"lesson": lesson.pk, "job": str(job.pk)}))
