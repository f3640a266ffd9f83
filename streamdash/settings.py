"""streamdash settings: defaults, then the environment, then computed values.

Every knob is an environment variable so that one file serves the embedded default
(SQLite, in-memory channel layer, one process) and production (PostgreSQL, Redis, N processes).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value is None or value == "" else int(value)


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return default if value is None or value == "" else float(value)


# --- core -----------------------------------------------------------------------------------
DEBUG = _env_bool("DEBUG", False)


def _dev_secret_key() -> str:
    """A development install's own secret, made once and kept beside the code (gitignored).
    A published development key would let anyone mint this install's public tokens."""
    path = BASE_DIR / ".dev-secret-key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(50)
        path.touch(mode=0o600)
        path.write_text(key)
        return key


SECRET_KEY = os.environ.get("SECRET_KEY") or (_dev_secret_key() if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set SECRET_KEY in the environment (or DEBUG=1 for development)."
    )
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG else "").split(
        ","
    )
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "channels",
    # In layer order, bottom first (README "Architecture").
    "apps.projects",
    "apps.streams",
    "apps.runs",
    "apps.retention",
    "apps.api",
    "apps.dashboard",
    "apps.embed",
    "apps.bench",
]

MIDDLEWARE = [
    "apps.dashboard.middleware.SiteSecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# The API and stream URLs run behind async-native middleware only (see streamdash/handlers.py).
STREAMDASH_API_MIDDLEWARE = [
    "apps.api.middleware.StreamCorsMiddleware",
    "apps.api.middleware.RateLimitMiddleware",
]

ROOT_URLCONF = "streamdash.urls"
ASGI_APPLICATION = "streamdash.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- database -------------------------------------------------------------------------------
# Connections per server process in each pool (Django's, and the async append pool's).
STREAMDASH_DB_POOL_MAX = _env_int("STREAMDASH_DB_POOL_MAX", 20)
# Seconds a request waits for a pooled PostgreSQL connection before it is answered 503: with
# the database away the pools wait for it to come back, and a request must not hang that long.
STREAMDASH_DB_WAIT_SECONDS = _env_float("STREAMDASH_DB_WAIT_SECONDS", 5.0)

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + busy timeout + IMMEDIATE transactions: concurrent writers queue on the lock
    # instead of failing with "database is locked" at the upgrade from a read lock.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
    }
else:
    # psycopg 3's pool: connections are reused across requests and threads without
    # the per-request connect cost. Durable commits: synchronous_commit stays on.
    DATABASES["default"].setdefault("OPTIONS", {})
    # Pooled connections are checked when taken (Django passes psycopg_pool's check): after a
    # database restart the idle ones are dead, and each would otherwise fail one request.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 2,
        "max_size": STREAMDASH_DB_POOL_MAX,
        "timeout": STREAMDASH_DB_WAIT_SECONDS,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- channel layer --------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
else:
    # A large capacity: the hub drains its channel quickly, but a burst must not be dropped
    # (a drop would cost readers one tail-check period, not data).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 100_000},
        }
    }

# --- static ---------------------------------------------------------------------------------
STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# Production runs `manage.py collectstatic`; a missing manifest entry then falls back to the
# plain file name instead of failing every page with a 500.
WHITENOISE_MANIFEST_STRICT = False

# --- auth -----------------------------------------------------------------------------------
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

# --- security -------------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Messages live in the session, not in a cookie: the admin's one-time display of a new API
# key must not travel in a (signed, readable) cookie.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
SESSION_COOKIE_HTTPONLY = True
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Preload is a commitment for the whole domain (hard to undo), so it is the operator's call:
# SECURE_HSTS_PRELOAD=1. Its deploy warning (W021) is silenced for that reason, not forgotten.
SECURE_HSTS_PRELOAD = _env_bool("SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
SECURE_REFERRER_POLICY = "same-origin"
CSRF_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
# Site pages (dashboard, admin). Scripts only from this origin; inline styles are allowed
# because htmx and the admin set a few. API and stream responses get a stricter sandbox CSP.
STREAMDASH_CSP = os.environ.get(
    "STREAMDASH_CSP",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'",
)
if _env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Stream bodies are read by the API itself with its own limit (STREAMDASH_MAX_REQUEST_BYTES).
DATA_UPLOAD_MAX_MEMORY_SIZE = _env_int("STREAMDASH_MAX_REQUEST_BYTES", 8 * 1024 * 1024)

# --- streamdash -----------------------------------------------------------------------------
MIB = 1024 * 1024
STREAMDASH_PUBLIC_DS = _env_bool("STREAMDASH_PUBLIC_DS", False)
STREAMDASH_MAX_STREAM_BYTES = _env_int("STREAMDASH_MAX_STREAM_BYTES", 300 * MIB)
STREAMDASH_MAX_REQUEST_BYTES = _env_int("STREAMDASH_MAX_REQUEST_BYTES", 8 * MIB)
STREAMDASH_MAX_CHUNK_BYTES = _env_int("STREAMDASH_MAX_CHUNK_BYTES", 1 * MIB)
STREAMDASH_MAX_JSON_DEPTH = _env_int("STREAMDASH_MAX_JSON_DEPTH", 64)
# Chunks (rows) one request may append; the SDK's writers batch at most 5000.
STREAMDASH_MAX_CHUNKS_PER_REQUEST = _env_int("STREAMDASH_MAX_CHUNKS_PER_REQUEST", 10_000)
STREAMDASH_READ_PAGE_CHUNKS = _env_int("STREAMDASH_READ_PAGE_CHUNKS", 1000)
STREAMDASH_READ_PAGE_BYTES = _env_int("STREAMDASH_READ_PAGE_BYTES", 4 * MIB)
# One batch of a live read (SSE, long-poll, WebSocket): what a slow reader holds in memory.
STREAMDASH_LIVE_PAGE_BYTES = _env_int("STREAMDASH_LIVE_PAGE_BYTES", 1 * MIB)
STREAMDASH_LONG_POLL_TIMEOUT = _env_float("STREAMDASH_LONG_POLL_TIMEOUT", 20.0)
STREAMDASH_SSE_MAX_SECONDS = _env_float("STREAMDASH_SSE_MAX_SECONDS", 60.0)
# How long a live read of a run stream that does not exist yet waits for it on the server
# before answering 404 with the run's status (apps/api/stream_wait.py); clients ask again.
STREAMDASH_STREAM_WAIT_SECONDS = _env_float("STREAMDASH_STREAM_WAIT_SECONDS", 20.0)
STREAMDASH_HEARTBEAT_SECONDS = _env_float("STREAMDASH_HEARTBEAT_SECONDS", 15.0)
STREAMDASH_TAIL_CHECK_SECONDS = _env_float("STREAMDASH_TAIL_CHECK_SECONDS", 1.0)
STREAMDASH_HUB_RING_CHUNKS = _env_int("STREAMDASH_HUB_RING_CHUNKS", 1024)
STREAMDASH_HUB_RING_BYTES = _env_int("STREAMDASH_HUB_RING_BYTES", 8 * MIB)
# Bounded pools for database work from async code (apps/streams/threads.py); keep their sum
# below STREAMDASH_DB_POOL_MAX.
STREAMDASH_DB_THREADS = {
    "read": _env_int("STREAMDASH_READ_THREADS", 4),
    "write": _env_int("STREAMDASH_WRITE_THREADS", 8),
}
STREAMDASH_RETENTION_DAYS = _env_int("STREAMDASH_RETENTION_DAYS", 28)
# Writes per second per credential (a token bucket: for the deployment in Redis when REDIS_URL
# is set, else per process; apps/api/shared_limits.py); 0 turns the limit off.
STREAMDASH_RATE_LIMIT_PER_SECOND = _env_float("STREAMDASH_RATE_LIMIT_PER_SECOND", 200.0)
STREAMDASH_RATE_LIMIT_BURST = _env_int("STREAMDASH_RATE_LIMIT_BURST", 1000)
# Open live reads (SSE, long-poll, /subscribe, WebSocket) per credential (for the deployment
# with REDIS_URL, else per process); past it a new one is a 429. 0 turns the cap off.
STREAMDASH_MAX_LIVE_READS = _env_int("STREAMDASH_MAX_LIVE_READS", 200)
# Seconds a verified API key or token is remembered per process (apps/projects/credentials.py);
# a revocation forgets it at once. 0 verifies on every request.
STREAMDASH_CREDENTIAL_CACHE_SECONDS = _env_float("STREAMDASH_CREDENTIAL_CACHE_SECONDS", 1.0)
# On PostgreSQL, appends from the stream URLs run on psycopg's async pool, on the event loop
# (apps/streams/pg_append.py); 0 sends them through the write thread pool like the rest.
STREAMDASH_ASYNC_PG = _env_bool("STREAMDASH_ASYNC_PG", True)
# In-server purge: every N seconds, once for the deployment (each process's scheduler claims
# the interval in the database; apps/retention/services.py); 0 turns it off (then run
# `manage.py purge_expired` from cron).
STREAMDASH_PURGE_INTERVAL_SECONDS = _env_float("STREAMDASH_PURGE_INTERVAL_SECONDS", 600.0)
STREAMDASH_PURGE_BATCH_CHUNKS = _env_int("STREAMDASH_PURGE_BATCH_CHUNKS", 5000)
# Purged runs stay as "expired" tombstones this long (reads get 410, not 404), then go.
STREAMDASH_PURGE_TOMBSTONE_DAYS = _env_int("STREAMDASH_PURGE_TOMBSTONE_DAYS", 7)

# "text" (the default: plain lines) or "json": one JSON object a line from every logger,
# Daphne's access log included, each with the request id (streamdash/core/jsonlog.py).
STREAMDASH_LOG_FORMAT = os.environ.get("STREAMDASH_LOG_FORMAT", "text").strip().lower() or "text"
if STREAMDASH_LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(
        f"STREAMDASH_LOG_FORMAT={STREAMDASH_LOG_FORMAT!r}: use text (the default) or json."
    )

LOGGING_CONFIG = "streamdash.core.jsonlog.configure"

# Operations (README "Metrics"): /metrics answers a bearer token equal to this (and staff
# sessions); unset, it answers staff only. STREAMDASH_METRICS=0 turns recording off (read by
# streamdash.core.metrics from the environment). Each server process writes the System page's
# heartbeat this often (0 = never).
STREAMDASH_METRICS_TOKEN = os.environ.get("STREAMDASH_METRICS_TOKEN", "")
STREAMDASH_SYSTEM_BEAT_SECONDS = _env_float("STREAMDASH_SYSTEM_BEAT_SECONDS", 5.0)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # Every handler carries the redaction filter: no token, key or Authorization in any log.
    "filters": {"redact_secrets": {"()": "apps.api.logredact.RedactSecretsFilter"}},
    "formatters": {
        "json": {
            "()": "streamdash.core.jsonlog.JsonFormatter",
            "redact": "ext://apps.api.logredact.redact",
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["redact_secrets"],
            **({"formatter": "json"} if STREAMDASH_LOG_FORMAT == "json" else {}),
        },
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "WARNING")},
    "loggers": {
        # Replace Django's default handlers for its loggers, which would bypass the filter.
        "django": {"handlers": ["console"], "propagate": False},
        # Daphne's access log in JSON mode (apps/api/accesslog.py) and `manage.py serve`'s
        # supervisor: lines an operator wants whatever LOG_LEVEL says.
        "streamdash.access": {"level": "INFO"},
        "streamdash.serve": {"level": "INFO"},
    },
}
