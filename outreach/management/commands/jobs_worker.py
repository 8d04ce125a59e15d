"""Run the durable job worker, first re-queuing jobs orphaned by a worker that died mid-job.

django-tasks' database worker marks a job RUNNING when it claims it; if the process is killed the job stays
RUNNING forever. A job is orphaned when the worker that claimed it ran on this host and its process is gone,
or when it has been running longer than JOBS_STALE_AFTER_SECONDS (workers on other hosts).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone
from django_tasks.base import TaskResultStatus
from django_tasks_db.models import DBTaskResult


def _worker_id() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def requeue_orphaned_jobs() -> int:
    """Queue again the jobs that dead workers left RUNNING. Call before this process claims any job."""
    host = socket.gethostname()[:40]
    me = _worker_id()
    stale_before = timezone.now() - dt.timedelta(seconds=settings.JOBS_STALE_AFTER_SECONDS)
    requeued = 0
    for job in DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING):
        last = job.worker_ids[-1] if job.worker_ids else ""
        worker_host, _sep, pid = last.rpartition(":")
        # A restarted container keeps its hostname and often hands the new worker the dead one's pid (1):
        # a job "held" by our own id, before we claimed anything, is orphaned too.
        dead_here = worker_host == host and pid.isdigit() and (last == me or not _process_alive(int(pid)))
        too_old = job.started_at is not None and job.started_at < stale_before
        if dead_here or too_old:
            updated = DBTaskResult.objects.filter(pk=job.pk, status=TaskResultStatus.RUNNING).update(
                status=TaskResultStatus.READY, started_at=None
            )
            requeued += updated
    return requeued


class Command(BaseCommand):
    help = "Run the job worker (recording finalisation and other durable jobs)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--interval", type=float, default=1.0)
        parser.add_argument("--batch", action="store_true", help="Exit when no job is left.")

    def handle(self, *args: Any, interval: float, batch: bool, **options: Any) -> None:
        count = requeue_orphaned_jobs()
        if count:
            self.stdout.write(f"re-queued {count} job(s) orphaned by a dead worker")
        extra = ["--batch"] if batch else []
        call_command(
            "db_worker",
            "--interval",
            str(interval),
            "--worker-id",
            _worker_id(),
            "--queue-name",
            "*",
            "--no-startup-delay",
            *extra,
        )
