"""Settings of the pipeline part of the platform, read from the environment."""

from ..env import env  # noqa: F401

PIPELINE_BEAT_SCHEDULE: dict = {}

# ==== BEGIN streaming / artifacts block (owned by the streaming helper) =====================
# Artifacts live in the named "artifacts" storage: the local filesystem under MEDIA_ROOT by
# default, S3 (django-storages) when AWS_STORAGE_BUCKET_NAME is set. Credentials come from
# boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, instance role, ...), never
# from here.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="") or None
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="") or None
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

# Progress stream: seconds between SSE heartbeat comments, seconds between polls of the
# Event table while a stream waits for live events, and the longest a stream stays open.
EVENTS_SSE_HEARTBEAT_SECONDS = env.float("EVENTS_SSE_HEARTBEAT_SECONDS", default=15.0)
EVENTS_POLL_SECONDS = env.float("EVENTS_POLL_SECONDS", default=0.5)
EVENTS_STREAM_MAX_SECONDS = env.float("EVENTS_STREAM_MAX_SECONDS", default=6 * 3600.0)
if EVENTS_SSE_HEARTBEAT_SECONDS <= 0 or EVENTS_POLL_SECONDS <= 0 or EVENTS_STREAM_MAX_SECONDS <= 0:
    raise ValueError(
        "EVENTS_SSE_HEARTBEAT_SECONDS, EVENTS_POLL_SECONDS and "
        "EVENTS_STREAM_MAX_SECONDS must be positive"
    )
# Largest text file the diff endpoint renders as a unified diff (bytes); larger ones are
# listed as changed without a diff.
ARTIFACTS_DIFF_MAX_BYTES = env.int("ARTIFACTS_DIFF_MAX_BYTES", default=512 * 1024)
# Where people reach the web process; `manage.py generate` prints artifact URLs under it.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://localhost:8001").rstrip("/")
# ==== END streaming / artifacts block =======================================================
