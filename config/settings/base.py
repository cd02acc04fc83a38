"""Settings shared by every environment.

Every value a user may change is read here (or in ``components/``) from the
environment through django-environ, and listed with its default in
``.env.example`` and the README.
"""

import os
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .env import BASE_DIR, env

# The development defaults below are public: production settings refuse to start with them.
DEVELOPMENT_SECRET_KEY = "dev-insecure-key-change-me-in-production-0123456789"  # noqa: S105
DEVELOPMENT_ORIGINS = ["http://localhost:8001", "http://127.0.0.1:8001"]
# Signs sessions, CSRF tokens and (unless JWT_SIGNING_KEY is set) JWTs. Production
# requires it; the development default is public and must never be used in production.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEVELOPMENT_SECRET_KEY)
# Django's debug mode (local settings turn it on by default).
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Host names this server answers to; the terminal's WebSocket also checks Origin against
# these and the trusted origins.
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Origins (scheme://host:port) trusted for CSRF-checked POSTs and WebSockets (run events,
# terminal). Production requires it and refuses loopback origins.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=DEVELOPMENT_ORIGINS)

# No "daphne" app: it exists only to make `manage.py runserver` serve ASGI, and importing it
# installs Twisted's reactor in every process (workers, beat, Flower: some 30 MB each). The
# web tier runs daphne itself (config.serve, `make up`).
INSTALLED_APPS = [
    "accounts.admin_config.MFAAdminConfig",  # django.contrib.admin behind the MFA step
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "social_django",
    "channels",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files, served from here (no CDN)
    "csp",
    "common",  # no models: its management commands (rotate_secrets)
    "accounts",
    "projects",
    "providers",
    "repositories",
    "pipeline",
    "terminal",
    "spending",
    "webhooks",
]

MIDDLEWARE = [
    "common.middleware.RequestIdMiddleware",
    "common.middleware.PrometheusMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "common.csp.CachedPolicyCSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # A cookie whose device session was signed out anywhere is signed out at its next request.
    "accounts.cookie_sessions.LiveCookieSessionMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Messages (admin, dashboard) live in the session: the cookie store signs a cookie on every
# request, messages or not, which showed in every request's profile.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False

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

# --- Concurrency: set here, together, and everything else is sized from it ----------------
# Each process's database pool must cover the threads of that process that may touch the
# database at the same moment (web threads, llm worker threads, plus the /health and step
# heartbeat threads), and the broker's producer pool must be larger than the llm worker's
# thread count, since each thread may queue further tasks while it runs (kombu's default
# of 10 deadlocked 50 chaining threads). Both pools are per process: across all processes
# their sum must stay below PostgreSQL's max_connections (see "Fan-out" in the README).

# Web processes `make up` serves HTTP and WebSocket with, on one port (0: one per CPU).
WEB_PROCESSES = env.int("WEB_PROCESSES", default=0)
# Threads per web process that run requests through Django (the event loop only does I/O):
# enough to cover a request's waits on PostgreSQL and Redis (a third of GET /runs/{id}), few
# enough not to fight over the GIL (8 cost 13-21% more CPU per request under wrk than 3-4).
WEB_THREADS = env.int("WEB_THREADS", default=4)
# Threads of the llm worker (I/O-bound model calls), in all, shared out between its processes:
# 50 runs at once make about 100 calls at a time (make bench, figure 3 with a 1 s model).
LLM_WORKER_CONCURRENCY = env.int("LLM_WORKER_CONCURRENCY", default=96)
# Processes of the llm worker (``config.llm_worker``; 0: one per CPU).
LLM_WORKER_PROCESSES = env.int("LLM_WORKER_PROCESSES", default=0) or os.cpu_count() or 1
# Processes of the sandbox worker (each runs a tester's step: generated code and tests);
# about two per core: a step also waits for the tester's model call (a third of the step with
# a 200 ms model, most of it with a real one), when its core could run another step's checks.
SANDBOX_WORKER_CONCURRENCY = env.int("SANDBOX_WORKER_CONCURRENCY", default=4)
# Seconds a web process lets requests in flight finish when told to stop.
WEB_DRAIN_SECONDS = env.float("WEB_DRAIN_SECONDS", default=4.0)
LLM_THREADS_PER_PROCESS = -(-LLM_WORKER_CONCURRENCY // LLM_WORKER_PROCESSES)  # rounded up
_BUSIEST_PROCESS = max(WEB_THREADS, LLM_THREADS_PER_PROCESS)
# Count the SQL statements each run sends, in every process, into Redis (make bench sets it;
# off in production: it wraps every database cursor).
BENCH_COUNT_STATEMENTS = env.bool("BENCH_COUNT_STATEMENTS", default=False)

# --- Database: PostgreSQL through psycopg 3 with Django's connection pool -----------------
# Connections the pool keeps open, at least (per process).
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=2)
# Connections the pool opens at most (per process): a web thread holds one for its
# request; an llm step holds one only between its statements, never across a model
# call, so half the llm threads is room enough.
DB_POOL_MAX_SIZE = env.int(
    "DB_POOL_MAX_SIZE", default=max(WEB_THREADS + 2, LLM_THREADS_PER_PROCESS // 2)
)
# Seconds to wait for a free pooled connection before failing.
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=30.0)
DATABASES = {
    # PostgreSQL URL; the default suits a local trust-auth server and compose's db service.
    "default": env.db_url(
        "DATABASE_URL", default="postgres://postgres:postgres@127.0.0.1:5432/aiflow"
    ),
}
DATABASES["default"]["ENGINE"] = "common.postgresql"
DATABASES["default"]["CONN_MAX_AGE"] = 0
DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
    "min_size": DB_POOL_MIN_SIZE,
    "max_size": DB_POOL_MAX_SIZE,
    "timeout": DB_POOL_TIMEOUT,
}
# With the pool, this makes every connection checked as it leaves the pool: one that died
# while idle (PostgreSQL restarted, a backend terminated) is replaced, never handed to a
# request. ``common.postgresql`` checks its socket first and sends psycopg_pool's empty query
# only when the socket has something to read (a live idle connection has nothing).
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Prepare the statements sent on every request and step (compiled once, common.db, and a
# step's and a run's own: common.db.prepared_cursor) on each connection, so PostgreSQL neither
# parses nor plans them again; false behind a pooler that does not keep prepared statements
# per client (PgBouncer in transaction mode before 1.21).
DB_PREPARE_STATEMENTS = env.bool("DB_PREPARE_STATEMENTS", default=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
# Where local files live: artifact blobs (without S3) and sandbox workspaces.
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(BASE_DIR / "var" / "media"))

# --- Redis: cache, Celery broker and results, Channels layer, rate limits -----------------
# Redis for cache, broker, results, channel layer, circuit breakers and rate limits.
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "aiflow",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 5},
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": "aiflow:ch"},
    }
}

# --- Celery ---------------------------------------------------------------------------------
# Celery broker (defaults to REDIS_URL).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
# Celery result backend (defaults to REDIS_URL).
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=REDIS_URL)
# Broker producer connections per process: twice the busiest process's threads, 64 at least.
CELERY_BROKER_POOL_LIMIT = env.int(
    "CELERY_BROKER_POOL_LIMIT", default=max(2 * _BUSIEST_PROCESS, 64)
)
# Seconds before Redis re-delivers an unacknowledged task (longer than any countdown).
CELERY_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_DEFAULT_QUEUE = "default"
# Routing by task name; a task may also name its queue in its decorator.
CELERY_TASK_ROUTES = {"common.*": {"queue": "default"}}
CELERY_TASK_QUEUES_NAMES = ("llm", "sandbox", "default")
# Task events for Flower's task pages (task-sent from the sender; received, started, succeeded
# from the worker): four broker messages per task, about 5% of a run's CPU (bench/run_cpu.py,
# paired runs). Without them Flower shows the workers and the queues; Flower never turns them
# on itself (scripts/flower.sh).
FLOWER_TASK_EVENTS = env.bool("FLOWER_TASK_EVENTS", default=False)
CELERY_TASK_SEND_SENT_EVENT = FLOWER_TASK_EVENTS
CELERY_WORKER_SEND_TASK_EVENTS = FLOWER_TASK_EVENTS
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
    "socket_connect_timeout": 3,
}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"socket_connect_timeout": 3}

# --- DRF, OpenAPI ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.SessionJWTAuthentication",
        "accounts.authentication.OTPSessionAuthentication",
    ],
    # Sliding windows on Redis; rates in ACCOUNTS_RATE_LIMITS (components/accounts.py).
    "DEFAULT_THROTTLE_CLASSES": [
        "accounts.throttling.SlidingUserRateThrottle",
        "accounts.throttling.SlidingScopedRateThrottle",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "common.parsers.JSONTolerantFormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "common.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AI Workflow Platform API",
    "DESCRIPTION": "Hierarchical multi-agent code generation: REST and WebSocket contract.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the pinned drf-spectacular-sidecar package, served as our own static
    # files: the docs page keeps the site's CSP (no CDN, no inline script).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # No badge fetched from validator.swagger.io.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "pipeline.models.Run.Status",
        "StepStatusEnum": "pipeline.models.WorkStatus",
        "RunKindEnum": "pipeline.models.Run.Kind",
        "ForgeKindEnum": "repositories.models.ForgeConnection.Kind",
    },
}

# --- Logging (structlog over the standard library) ------------------------------------------
# Log level of every process.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# JSON log lines (production default) instead of key=value.
LOG_JSON = env.bool("LOG_JSON", default=False)
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": "common.logging.formatter_factory",
            "json": LOG_JSON,
        }
    },
    "filters": {
        "request_id": {"()": "common.logging.RequestIdFilter"},
        "replaced_tasks": {"()": "common.logging.DropReplacedTasks"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "structured",
            "filters": ["request_id", "replaced_tasks"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "celery": {"level": LOG_LEVEL},
    },
}

# --- Per-app settings, each in its own module -----------------------------------------------
from .components.accounts import *  # noqa: E402, F403
from .components.outbound import *  # noqa: E402, F403
from .components.pipeline import *  # noqa: E402, F403
from .components.providers import *  # noqa: E402, F403
from .components.quotas import *  # noqa: E402, F403
from .components.repositories import *  # noqa: E402, F403
from .components.sandbox import *  # noqa: E402, F403
from .components.secrets import *  # noqa: E402, F403
from .components.steering import *  # noqa: E402, F403
from .components.tracing import *  # noqa: E402, F403
from .components.web import *  # noqa: E402, F403
from .components.webhooks import *  # noqa: E402, F403

# --- Operations -----------------------------------------------------------------------------
# A bearer token /metrics requires; empty leaves it open outside production.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Without METRICS_TOKEN, /metrics answers 403 (production sets this).
METRICS_REQUIRE_TOKEN = False
# Seconds a web process's view of the checks behind /health may age before it is refreshed
# (in the background; requests answer from a passing view meanwhile).
HEALTH_REFRESH_SECONDS = env.float("HEALTH_REFRESH_SECONDS", default=2.0)
# Seconds after which /health never answers from a view: the request waits for a refresh
# (after an idle spell the first answer is current); at least HEALTH_REFRESH_SECONDS.
HEALTH_MAX_AGE_SECONDS = env.float("HEALTH_MAX_AGE_SECONDS", default=5 * HEALTH_REFRESH_SECONDS)
# Seconds each /health check (database, Redis, broker) may take before it counts as failed.
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=2.0)
if not 0 < HEALTH_REFRESH_SECONDS <= HEALTH_MAX_AGE_SECONDS:
    raise ImproperlyConfigured(
        "HEALTH_REFRESH_SECONDS must be positive and HEALTH_MAX_AGE_SECONDS at least as long"
    )
# Seconds between a worker's heartbeats, which /health reads to see the workers.
HEALTH_HEARTBEAT_SECONDS = env.float("HEALTH_HEARTBEAT_SECONDS", default=2.0)
# A worker not heard from for this many seconds counts as gone.
HEALTH_WORKER_STALE_SECONDS = env.float("HEALTH_WORKER_STALE_SECONDS", default=10.0)
# A directory shared by the web and worker processes of one host: each writes its counters
# there (prometheus-client's multiprocess mode) and /metrics adds them up. `make up` sets it.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")

# Periodic tasks: each part of the platform names its own in its component module.
CELERY_BEAT_SCHEDULE = {
    **ACCOUNTS_BEAT_SCHEDULE,  # noqa: F405
    **PIPELINE_BEAT_SCHEDULE,  # noqa: F405
    **PROVIDERS_BEAT_SCHEDULE,  # noqa: F405
    **REPOSITORY_BEAT_SCHEDULE,  # noqa: F405
    **SANDBOX_BEAT_SCHEDULE,  # noqa: F405
    **SPENDING_BEAT_SCHEDULE,  # noqa: F405
    **WEBHOOKS_BEAT_SCHEDULE,  # noqa: F405
}
