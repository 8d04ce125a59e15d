"""Production settings: `manage.py check --deploy` passes with a plausible production environment, and the
settings refuse to load without their required secrets.

Each run is a subprocess with a clean environment, so nothing of the test settings (or of the caller's
shell) leaks in. `check --deploy` does not connect to the database (Django only does with --database): the
URL below points at a host that does not resolve, which proves it.
"""

from __future__ import annotations

import os
import secrets
import string
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = "outreach.settings.production"


def random_secret_key(length: int = 50) -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(length))


def production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "JINSHI_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_SETTINGS_MODULE": PRODUCTION,
        "DJANGO_SECRET_KEY": random_secret_key(),
        "DJANGO_ALLOWED_HOSTS": "jinshi.example.org",
        "DATABASE_URL": "postgres://jinshi:not-a-real-password@db.invalid:5432/jinshi",
    }
    env.update(extra)
    return env


# The environment docker-compose.yml gives the app services (values made up; nothing is contacted).
COMPOSE_LIKE = {
    "REDIS_URL": "redis://:redis-password@redis.invalid:6379/0",
    "S3_BUCKET": "jinshi",
    "S3_ENDPOINT_URL": "https://s3.jinshi.example.org",
    "S3_ACCESS_KEY_ID": "jinshi-app",
    "S3_SECRET_ACCESS_KEY": "s3-secret",
    "LIVE_TURN_URLS": "turn:turn.jinshi.example.org:3478?transport=udp",
    "LIVE_TURN_SECRET": "turn-secret",
    "MEDIA_WORKER_INPROCESS": "false",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://jinshi.example.org",
}


def manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


DEPLOY_CHECK = ("check", "--deploy", "--fail-level", "WARNING")


def test_check_deploy_passes_with_a_production_environment(tmp_path: Path) -> None:
    # The two runs are independent processes: run them side by side to keep the suite fast.
    envs = {"minimal": production_env(tmp_path), "compose": production_env(tmp_path, **COMPOSE_LIKE)}
    with ThreadPoolExecutor(max_workers=len(envs)) as pool:
        results = dict(zip(envs, pool.map(lambda env: manage(env, *DEPLOY_CHECK), envs.values()), strict=True))
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: check --deploy failed:\n{result.stdout}\n{result.stderr}"
        assert "no issues" in result.stdout, f"{name}: {result.stdout}"


def test_production_settings_need_the_secret_key_and_a_weak_one_fails_the_deploy_check(
    tmp_path: Path,
) -> None:
    without_secret = production_env(tmp_path)
    del without_secret["DJANGO_SECRET_KEY"]
    weak_secret = production_env(tmp_path, DJANGO_SECRET_KEY="short-and-weak")
    without_hosts = production_env(tmp_path)
    del without_hosts["DJANGO_ALLOWED_HOSTS"]
    runs = [(without_secret, ("check",)), (weak_secret, DEPLOY_CHECK), (without_hosts, ("check",))]
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        missing, weak, no_hosts = pool.map(lambda run: manage(run[0], *run[1]), runs)

    assert missing.returncode != 0, "production settings loaded without DJANGO_SECRET_KEY"
    assert "DJANGO_SECRET_KEY" in missing.stderr
    # The deploy check itself can fail: a short key is reported (security.W009) and fails at WARNING.
    assert weak.returncode != 0
    assert "security.W009" in weak.stderr + weak.stdout
    assert no_hosts.returncode != 0
    assert "DJANGO_ALLOWED_HOSTS" in no_hosts.stderr
