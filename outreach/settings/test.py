"""Test settings: fast password hashing, a temporary var directory, database from the environment."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = "test-only-key"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
LIVE_PUBLISHER_GRACE_SECONDS = env.float("LIVE_PUBLISHER_GRACE_SECONDS", default=5.0)

for _path in (VAR_DIR, MEDIA_ROOT, MEDIA_SPOOL_DIR):  # noqa: F405
    _path.mkdir(parents=True, exist_ok=True)
