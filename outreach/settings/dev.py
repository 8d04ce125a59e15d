"""Local development and the README run command: embedded defaults, a fixed dev-only secret."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
# Development only; production.py has no default and refuses to start without DJANGO_SECRET_KEY.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-only-insecure-key-not-for-production")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])

# Embedded defaults keep their SQLite file, media and spool under var/; make sure it exists.
for _path in (VAR_DIR, MEDIA_ROOT, MEDIA_SPOOL_DIR):  # noqa: F405
    _path.mkdir(parents=True, exist_ok=True)
