"""Start the platform for real (daphne, job worker, optional media worker) and drive it with Chromium.

Each journey gets its own var directory (SQLite file, media, spool) or its own PostgreSQL database, so
journeys never share state. Processes are real subprocesses of `manage.py` / daphne with the same
settings a deployment uses; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    # Background tabs are throttled; every participant here is "in the foreground".
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate: Callable[[], Any], *, timeout: float, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what or predicate!r} (last: {last!r})")


@dataclass
class Platform:
    """A running platform. ``web`` lists the base URLs of its daphne processes."""

    var_dir: Path
    env: dict[str, str]
    web: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    media_workers: dict[str, str] = field(default_factory=dict)  # process name -> worker id
    bind_host: str | None = None  # daphne listens here too (e.g. the host side of a test network namespace)

    def manage(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.var_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        self.procs[name] = proc
        return proc

    def start_web(self, name: str) -> str:
        port = free_port()
        extra = ["-e", f"tcp:port={port}:interface={self.bind_host}"] if self.bind_host else []
        self.start(
            name, [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), *extra, "outreach.asgi:application"]
        )
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: _http_ok(f"{base}/healthz"), timeout=30, what=f"{name} to answer /healthz")
        self.web.append(base)
        return base

    def start_media_worker(self, name: str = "media") -> str:
        """Start a media worker process; returns its worker id (the process is ``procs[name]``)."""
        before = self.worker_ids()
        self.start(name, [PYTHON, "manage.py", "media_worker"])
        new = wait_until(lambda: self.worker_ids() - before, timeout=30, what="a media worker heartbeat")
        (worker_id,) = new
        self.media_workers[name] = worker_id
        return str(worker_id)

    def media_worker_process(self, worker_id: str) -> str:
        """The process name of the media worker with this id."""
        return next(name for name, wid in self.media_workers.items() if wid == worker_id)

    def worker_ids(self) -> set[str]:
        out = self.shell(
            "from live.models import MediaWorker; "
            "print(','.join(MediaWorker.objects.values_list('worker_id', flat=True)))"
        )
        return {w for w in out.strip().split(",") if w}

    def shell(self, code: str) -> str:
        return self.manage("shell", "--no-imports", "-c", code).stdout

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        proc.wait(timeout=15)

    def log(self, name: str) -> str:
        path = self.var_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def _http_ok(url: str) -> bool:
    try:
        with urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for one journey, dropped afterwards."""
    import psycopg

    name = f"jinshi_e2e_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def running_platform(
    tmp: Path,
    *,
    database_url: str | None = None,
    redis_url: str | None = None,
    web_processes: int = 1,
    external_media: bool = False,
    extra_env: dict[str, str] | None = None,
    bind_host: str | None = None,
) -> Iterator[Platform]:
    var_dir = tmp / "var"
    var_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL", "S3_"))},
        "DJANGO_SETTINGS_MODULE": "outreach.settings.dev",
        "DJANGO_DEBUG": "false",
        "JINSHI_VAR_DIR": str(var_dir),
        "PYTHONUNBUFFERED": "1",
        "LIVE_PUBLISHER_GRACE_SECONDS": "60",
        "MEDIA_WORKER_STALE_SECONDS": "6",
        **(extra_env or {}),
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    if redis_url:
        env["REDIS_URL"] = redis_url
    env["MEDIA_WORKER_INPROCESS"] = "false" if external_media else "true"
    if bind_host:
        env["DJANGO_ALLOWED_HOSTS"] = f"127.0.0.1,localhost,[::1],{bind_host}"
    platform = Platform(var_dir=var_dir, env=env, bind_host=bind_host)
    try:
        platform.manage("migrate", "--noinput")
        platform.manage("demo")
        platform.manage("collectstatic", "--noinput", "-v0")
        platform.start("jobs", [PYTHON, "manage.py", "jobs_worker", "--interval", "0.5"])
        if external_media:
            platform.start_media_worker()
        for number in range(web_processes):
            platform.start_web(f"web{number + 1}")
        yield platform
    finally:
        platform.stop()
        if os.environ.get("JINSHI_KEEP_E2E_LOGS"):
            shutil.copytree(var_dir, Path(os.environ["JINSHI_KEEP_E2E_LOGS"]) / tmp.name, dirs_exist_ok=True)
