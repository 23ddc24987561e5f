"""One environment-driven settings module with zero-config defaults.

DISPATCH_HOME holds the SQLite database, run/ state (pidfiles, the private
Redis socket), logs/, config.toml and secret_key. Nothing here creates or
changes a file (secret_key is only read): commands that need the directories
create them and report failures.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from dispatchsite.core.env import env_bool, env_int, env_path, env_str

BASE_DIR = Path(__file__).resolve().parent.parent

DISPATCH_HOME = env_path("DISPATCH_HOME", Path.home() / ".dispatch")
DISPATCH_RUN_DIR = DISPATCH_HOME / "run"
DISPATCH_LOG_DIR = DISPATCH_HOME / "logs"
DISPATCH_CONFIG_FILE = DISPATCH_HOME / "config.toml"
DISPATCH_HOST = env_str("DISPATCH_HOST") or socket.gethostname().split(".")[0]
DISPATCH_CODEX_BIN = env_str("DISPATCH_CODEX_BIN", "codex")
DISPATCH_RPC_TIMEOUT = env_int("DISPATCH_RPC_TIMEOUT", 30, minimum=1)
DISPATCH_EVENT_RETENTION_DAYS = env_int("DISPATCH_EVENT_RETENTION_DAYS", 0, minimum=0)
# Web (daphne) processes sharing the port: the API is Python under one GIL
# per process, so a busy host gives it more than one (dispatchsite.runtime.web).
DISPATCH_WEB_PROCESSES = env_int("DISPATCH_WEB_PROCESSES", 1, minimum=1)
# daphne pings every websocket this often and drops one that has not answered
# within the timeout: a client that stopped reading also stops answering, so
# what daphne buffers for it is bounded by this much of its stream.
DISPATCH_WS_PING_INTERVAL = env_int("DISPATCH_WS_PING_INTERVAL", 5, minimum=1)
DISPATCH_WS_PING_TIMEOUT = env_int("DISPATCH_WS_PING_TIMEOUT", 10, minimum=1)
# A socket opened with a token re-checks it this often, so revoking (or the
# expiry of) a token closes its open streams within that many seconds.
DISPATCH_WS_TOKEN_RECHECK_SECONDS = env_int(
    "DISPATCH_WS_TOKEN_RECHECK_SECONDS", 2, minimum=1
)
# Journal events the worker holds in memory while the database refuses
# writes (lanes.worker.journal_health); past it the newest are dropped.
DISPATCH_JOURNAL_HOLD_LIMIT = env_int("DISPATCH_JOURNAL_HOLD_LIMIT", 50_000, minimum=1)
DISPATCH_DELTA_COMPACT_AFTER_SECONDS = env_int(
    "DISPATCH_DELTA_COMPACT_AFTER_SECONDS", 3600, minimum=0
)

# An external Redis when DISPATCH_REDIS_URL is set; otherwise the private
# instance that `dispatch up` starts on a unix socket under run/.
DISPATCH_REDIS_URL = env_str("DISPATCH_REDIS_URL")
DISPATCH_REDIS_PRIVATE = not DISPATCH_REDIS_URL
REDIS_URL = DISPATCH_REDIS_URL or f"unix://{DISPATCH_RUN_DIR / 'redis.sock'}"
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"DISPATCH_REDIS_URL={REDIS_URL!r} must start with redis://, rediss:// or unix://"
    )


def _home_secret_key(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


# `dispatch up` writes DISPATCH_HOME/secret_key (runtime/home.py) before it
# starts the web server. A process without it (a CLI call before the first
# `up`) signs with a throwaway key: only the web server's sessions use it.
SECRET_KEY = (
    env_str("DISPATCH_SECRET_KEY")
    or _home_secret_key(DISPATCH_HOME / "secret_key")
    or secrets.token_urlsafe(50)
)
DEBUG = env_bool("DISPATCH_DEBUG", False)


def allowed_hosts() -> list[str]:
    """The loopback names the server is bound to, plus DISPATCH_ALLOWED_HOSTS
    (comma-separated). Never "*": a page on any site could otherwise reach
    the local server by rebinding its own name to 127.0.0.1."""
    extra = [h.strip() for h in env_str("DISPATCH_ALLOWED_HOSTS").split(",")]
    return ["127.0.0.1", "localhost", "[::1]", *(h for h in extra if h)]


ALLOWED_HOSTS = allowed_hosts()

# Each app registers its own ops, commands and beat entries (autodiscovery).
DISPATCH_APPS = [
    "lanes",
    "triggers",
    "workspaces",
    "dispatchsite.runtime",
    "dispatchsite.surfaces",
]
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "channels",
    # Only for its templates and static files: /api/v1/docs serves Swagger UI
    # from them instead of a CDN.
    "ninja",
    *DISPATCH_APPS,
]
# A CLI verb that only runs ops (list, get, send, ...) loads dispatch's own
# apps: admin, auth and celery-beat models cost every call ~0.15 s. Processes
# that serve or migrate (web, worker, celery, up, doctor, migrate) set none.
if env_bool("DISPATCH_OPS_ONLY", False):
    INSTALLED_APPS = list(DISPATCH_APPS)

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "dispatchsite.surfaces.api.api_method_not_allowed",
]
# SecurityMiddleware sends nosniff and this referrer policy; not "no-referrer",
# which makes browsers send `Origin: null` on POSTs and fail the admin's CSRF.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# Under /api/ a CSRF failure answers the API's JSON error body.
CSRF_FAILURE_VIEW = "dispatchsite.urls.csrf_failure"

ROOT_URLCONF = "dispatchsite.urls"
ASGI_APPLICATION = "dispatchsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "dispatchsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# WAL lets the web server, worker and celery read while one writes;
# IMMEDIATE takes the write lock up front so busy_timeout applies.
SQLITE_OPTIONS = {
    "transaction_mode": "IMMEDIATE",
    "timeout": 20,
    "init_command": (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
    ),
}
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"DATABASE_URL is not a database URL: {exc}"
        ) from None
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A shared SQLite file (one machine, several `up`s) needs the same.
        DATABASES["default"]["OPTIONS"] = dict(SQLITE_OPTIONS)
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(DISPATCH_HOME / "dispatch.sqlite3"),
            "OPTIONS": dict(SQLITE_OPTIONS),
            "TEST": {"NAME": env_str("DISPATCH_TEST_DB_NAME") or None},
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# redis-py 8 defaults socket_timeout to 5 s, which kills channels_redis's
# blocking receive; None keeps the worker's command loop alive when idle.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": None}],
            "capacity": 1000,
            "expiry": 60,
            "prefix": "dispatch",
        },
    }
}


def celery_redis_url(url: str) -> str:
    """Celery gets logical db 1 of the same Redis; kombu spells sockets
    redis+socket:// (it rejects unix://)."""
    if url.startswith("unix://"):
        return "redis+socket://" + url.removeprefix("unix://") + "?virtual_host=1"
    scheme, _, rest = url.partition("://")
    if "/" in rest:
        return url  # the operator chose a db
    return f"{scheme}://{rest}/1"


CELERY_BROKER_URL = celery_redis_url(REDIS_URL)
CELERY_RESULT_BACKEND = CELERY_BROKER_URL
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": env_str("DISPATCH_LOG_LEVEL", "WARNING")},
}
