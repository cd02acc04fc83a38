"""Settings of the pipeline part of the platform, read from the environment."""

from datetime import timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# ---- Pipeline core: canvas, bounds, durability ----

# Design rounds a run may take before the planner approves (a run's option may lower it).
PIPELINE_MAX_DESIGN_ROUNDS = env.int("PIPELINE_MAX_DESIGN_ROUNDS", default=3)
# Coder -> tester attempts a task may take before the run fails (a run's option may lower it).
PIPELINE_MAX_FIX_ATTEMPTS = env.int("PIPELINE_MAX_FIX_ATTEMPTS", default=3)
# Whether runs wait at the approval gate after design unless their options say otherwise.
PIPELINE_REQUIRE_APPROVAL = env.bool("PIPELINE_REQUIRE_APPROVAL", default=False)
# Budget of a run in USD when the request names none (empty: no budget).
PIPELINE_DEFAULT_BUDGET_USD = env.str("PIPELINE_DEFAULT_BUDGET_USD", default="")
if PIPELINE_DEFAULT_BUDGET_USD:
    try:
        if Decimal(PIPELINE_DEFAULT_BUDGET_USD) <= 0:
            raise ImproperlyConfigured("PIPELINE_DEFAULT_BUDGET_USD must be positive")
    except InvalidOperation as exc:
        raise ImproperlyConfigured(
            f"PIPELINE_DEFAULT_BUDGET_USD is not a number: {PIPELINE_DEFAULT_BUDGET_USD!r}"
        ) from exc
# Consult rounds integration may take to resolve conflicts before the run fails.
PIPELINE_MAX_CONSULT_ROUNDS = env.int("PIPELINE_MAX_CONSULT_ROUNDS", default=2)
# Tokens (in + out) a run may use before it fails with reason max_tokens.
PIPELINE_MAX_RUN_TOKENS = env.int("PIPELINE_MAX_RUN_TOKENS", default=2_000_000)
# Seconds a run (each resume anew) may take before it fails with reason wall_time.
PIPELINE_MAX_WALL_SECONDS = env.int("PIPELINE_MAX_WALL_SECONDS", default=3600)
# Largest max_design_rounds a request may ask for.
PIPELINE_OPTION_MAX_ROUNDS = env.int("PIPELINE_OPTION_MAX_ROUNDS", default=10)
# Largest max_fix_attempts a request may ask for.
PIPELINE_OPTION_MAX_FIX_ATTEMPTS = env.int("PIPELINE_OPTION_MAX_FIX_ATTEMPTS", default=10)
# Longest prompt a run may have, in characters.
PIPELINE_PROMPT_MAX_CHARS = env.int("PIPELINE_PROMPT_MAX_CHARS", default=20_000)
# Context each step's prompt may carry, in tokens (about four characters each).
PIPELINE_CONTEXT_BUDGET_TOKENS = env.int("PIPELINE_CONTEXT_BUDGET_TOKENS", default=12_000)
# Tokens the repository map (paths, sizes, top-level symbols) given to the architect and the
# planner of a run on an imported repository may take (about four characters each).
PIPELINE_REPO_MAP_TOKENS = env.int("PIPELINE_REPO_MAP_TOKENS", default=4_000)
# Lines up to which a coder may rewrite an existing file whole; longer files are changed with
# edit blocks (search/replace, applied exactly).
PIPELINE_REWRITE_MAX_LINES = env.int("PIPELINE_REWRITE_MAX_LINES", default=200)
# Seconds between heartbeats of a running step (one thread a worker process beats them all).
PIPELINE_HEARTBEAT_SECONDS = env.float("PIPELINE_HEARTBEAT_SECONDS", default=2.0)
# A running step whose heartbeat is older than this lost its worker: its run is resumed.
PIPELINE_STALE_SECONDS = env.float("PIPELINE_STALE_SECONDS", default=10.0)
# An active run with no step running and no progress for this long lost its queued work.
PIPELINE_QUIET_SECONDS = env.float("PIPELINE_QUIET_SECONDS", default=180.0)
# Seconds between two looks of the reaper (beat) for stalled runs.
PIPELINE_REAPER_SECONDS = env.float("PIPELINE_REAPER_SECONDS", default=2.0)
# A task that finds its step claimed by a live worker waits this long before looking again.
PIPELINE_BUSY_RETRY_SECONDS = env.float("PIPELINE_BUSY_RETRY_SECONDS", default=5.0)
# Test-only: let fault tests hold a worker at named moments (pipeline.faults); never in production.
PIPELINE_FAULT_POINTS = env.bool("PIPELINE_FAULT_POINTS", default=False)
# The tester runs the code in the sandbox (projects.checks) when available; otherwise it
# gives a static review, labelled as such.
SANDBOX_TESTS_ENABLED = env.bool("SANDBOX_TESTS_ENABLED", default=True)

for _name in (
    "PIPELINE_MAX_DESIGN_ROUNDS",
    "PIPELINE_MAX_FIX_ATTEMPTS",
    "PIPELINE_MAX_CONSULT_ROUNDS",
    "PIPELINE_MAX_RUN_TOKENS",
    "PIPELINE_MAX_WALL_SECONDS",
    "PIPELINE_CONTEXT_BUDGET_TOKENS",
    "PIPELINE_REPO_MAP_TOKENS",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name} must be at least 1")
if not 0 < 2 * PIPELINE_HEARTBEAT_SECONDS <= PIPELINE_STALE_SECONDS <= PIPELINE_QUIET_SECONDS:
    raise ImproperlyConfigured(
        "PIPELINE_HEARTBEAT_SECONDS must be positive, PIPELINE_STALE_SECONDS at least two "
        "heartbeats, and PIPELINE_QUIET_SECONDS at least PIPELINE_STALE_SECONDS"
    )
if PIPELINE_REWRITE_MAX_LINES < 0:
    raise ImproperlyConfigured("PIPELINE_REWRITE_MAX_LINES must be 0 or more")
if PIPELINE_REAPER_SECONDS <= 0:
    raise ImproperlyConfigured("PIPELINE_REAPER_SECONDS must be positive")

PIPELINE_BEAT_SCHEDULE: dict = {
    "pipeline-reap-stale-runs": {
        "task": "pipeline.reap_stale_runs",
        "schedule": timedelta(seconds=PIPELINE_REAPER_SECONDS),
        "options": {"queue": "default", "expires": PIPELINE_REAPER_SECONDS},
    },
}
# ---- end of pipeline core ----

# ==== BEGIN streaming / artifacts block (owned by the streaming helper) =====================
# Artifacts live in the named "artifacts" storage: the local filesystem under MEDIA_ROOT by
# default, S3 (django-storages) when AWS_STORAGE_BUCKET_NAME is set. Credentials come from
# boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, instance role, ...), never
# from here.

# S3 bucket of the artifacts (empty: the local filesystem under MEDIA_ROOT).
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
# S3 endpoint URL, for an S3-compatible store (MinIO, moto); empty: AWS.
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
# Region of the artifacts bucket (empty: boto3's default).
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
# Key prefix of the artifacts in the bucket.
ARTIFACTS_S3_PREFIX = env.str("ARTIFACTS_S3_PREFIX", default="artifacts")

if AWS_STORAGE_BUCKET_NAME:
    _ARTIFACTS_STORAGE: dict = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "endpoint_url": AWS_S3_ENDPOINT_URL,
            "region_name": AWS_S3_REGION_NAME,
            "location": ARTIFACTS_S3_PREFIX,
            "default_acl": None,
            "querystring_auth": True,
            # Blobs are content-addressed: a key's content never changes, so rewriting it
            # is harmless and skips django-storages' extra existence probe.
            "file_overwrite": True,
        },
    }
else:
    # No location: FileSystemStorage then follows settings.MEDIA_ROOT (also under tests'
    # override_settings).
    _ARTIFACTS_STORAGE = {"BACKEND": "django.core.files.storage.FileSystemStorage"}

STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "artifacts": _ARTIFACTS_STORAGE,
}

# Seconds between heartbeat comments on an SSE progress stream.
EVENTS_SSE_HEARTBEAT_SECONDS = env.float("EVENTS_SSE_HEARTBEAT_SECONDS", default=15.0)
# Seconds between polls of the Event table while a stream waits for live events.
EVENTS_POLL_SECONDS = env.float("EVENTS_POLL_SECONDS", default=0.5)
# Longest a progress stream stays open, in seconds.
EVENTS_STREAM_MAX_SECONDS = env.float("EVENTS_STREAM_MAX_SECONDS", default=6 * 3600.0)
if EVENTS_SSE_HEARTBEAT_SECONDS <= 0 or EVENTS_POLL_SECONDS <= 0 or EVENTS_STREAM_MAX_SECONDS <= 0:
    raise ValueError(
        "EVENTS_SSE_HEARTBEAT_SECONDS, EVENTS_POLL_SECONDS and "
        "EVENTS_STREAM_MAX_SECONDS must be positive"
    )
# Largest text file the diff endpoint renders as a unified diff (bytes); larger ones are
# listed as changed without a diff.
ARTIFACTS_DIFF_MAX_BYTES = env.int("ARTIFACTS_DIFF_MAX_BYTES", default=512 * 1024)
# Where people reach the web process; `manage.py generate` prints artifact URLs under it,
# delivered pull requests link to their run page under it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8001").rstrip("/")
# ==== END streaming / artifacts block =======================================================
