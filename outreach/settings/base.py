"""Shared settings, read from the environment with django-environ.

Embedded defaults (no variable set) give a single-process platform: SQLite, the in-memory channel layer,
the media worker inside the web process and local disk storage. Each variable below switches one part to
its scaled counterpart (see README "Scaling out").
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parents[2]
VAR_DIR = Path(environ.Env().str("JINSHI_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "django_tasks",
    "django_tasks_db",
    "outreach",
    "courseware",
    "live",
    "mentoring",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "outreach.middleware.ChosenLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "outreach.urls"
ASGI_APPLICATION = "outreach.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------------
# SQLite by default. WAL lets the web process and the job worker read while one writes; "IMMEDIATE"
# transactions take the write lock up front, so two writers queue on the busy timeout instead of failing
# with "database is locked" half-way through a transaction.
# https://docs.djangoproject.com/en/5.2/ref/databases/#sqlite-notes
SQLITE_PATH = VAR_DIR / "jinshi.sqlite3"
DATABASES = {
    "default": env.db_url(
        "DATABASE_URL",
        default=f"sqlite:///{SQLITE_PATH}",
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", 0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channels ----------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000, "expiry": 30},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The media worker (aiortc) runs inside the web process unless told otherwise. With Redis it is
# normally its own process (`manage.py media_worker`), so default to external there.
MEDIA_WORKER_INPROCESS = env.bool("MEDIA_WORKER_INPROCESS", default=not REDIS_URL)
# A worker whose heartbeat is older than this is taken for dead (lessons are not pinned to it).
MEDIA_WORKER_STALE_SECONDS = env.float("MEDIA_WORKER_STALE_SECONDS", default=15.0)
# Where the media worker writes recording pieces before handing them to storage.
MEDIA_SPOOL_DIR = Path(env.str("MEDIA_SPOOL_DIR", default=str(VAR_DIR / "spool")))
LIVE_KEYFRAME_INTERVAL_SECONDS = env.float("LIVE_KEYFRAME_INTERVAL_SECONDS", default=10.0)
LIVE_RECORDING_PIECE_SECONDS = env.float("LIVE_RECORDING_PIECE_SECONDS", default=5.0)
# How long a lesson waits for its teacher to come back before it ends by itself.
LIVE_PUBLISHER_GRACE_SECONDS = env.float("LIVE_PUBLISHER_GRACE_SECONDS", default=120.0)
LIVE_MAX_SDP_BYTES = 64 * 1024

# ICE servers handed to browsers and used by the media worker. None of Google's by default: our users'
# networks cannot reach them anyway. Format: comma-separated URLs, e.g. "stun:stun.example.cn:3478".
LIVE_STUN_URLS: list[str] = env.list("LIVE_STUN_URLS", default=[])
LIVE_TURN_URLS: list[str] = env.list("LIVE_TURN_URLS", default=[])
LIVE_TURN_SECRET = env.str("LIVE_TURN_SECRET", default="")
LIVE_TURN_TTL_SECONDS = env.int("LIVE_TURN_TTL_SECONDS", default=6 * 3600)
# Whether media workers allocate TURN relays themselves. Needed when a worker sits behind NAT; a worker with
# a public address (or on coturn's host, as in docker-compose) is reached through the browsers' relays alone.
LIVE_MEDIA_WORKER_TURN = env.bool("LIVE_MEDIA_WORKER_TURN", default=True)

# --- Jobs (django-tasks, database backend: jobs survive a restart) ------------------------------------
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# A job still "running" this long after it started, while no worker finished it, is taken as orphaned by a
# dead worker and queued again when a worker starts.
JOBS_STALE_AFTER_SECONDS = env.int("JOBS_STALE_AFTER_SECONDS", default=600)

# --- Storage -----------------------------------------------------------------------------------------
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"  # never served directly: files go through permission-checked views
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

AWS_STORAGE_BUCKET_NAME = env.str("S3_BUCKET", default="")
if AWS_STORAGE_BUCKET_NAME:
    # Private objects; authorised users are redirected to short-lived presigned URLs.
    # https://django-storages.readthedocs.io/en/latest/backends/amazon-S3.html
    DEFAULT_STORAGE = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": env.str("S3_ENDPOINT_URL", default="") or None,
            "access_key": env.str("S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("S3_SECRET_ACCESS_KEY", default="") or None,
            "region_name": env.str("S3_REGION", default="us-east-1"),
            "signature_version": "s3v4",
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": env.int("S3_URL_EXPIRE_SECONDS", default=300),
            "file_overwrite": False,
        },
    }
else:
    DEFAULT_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

STORAGES = {
    "default": DEFAULT_STORAGE,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
FILE_UPLOAD_PERMISSIONS = 0o640

# --- i18n --------------------------------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文"), ("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Auth --------------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"aioice": {"level": "WARNING"}, "aiortc": {"level": "WARNING"}},
}
