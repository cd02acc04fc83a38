"""What one user may use: dollars in flight and on record, projects, and workspace disk.

The daily dollar cap itself (``LLM_USER_DAILY_BUDGET_USD``) is a provider setting; here is
how long a call's reservation against it lasts, how far back the spend history goes, and the
per-user caps on projects and on the disk their terminals' workspace images take.
"""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from ..env import env
from .providers import LLM_TIMEOUT_SECONDS
from .sandbox import SANDBOX_WORKSPACE_MB

# Seconds a model call's worst-case cost stays reserved against its user's daily cap when its
# answer never comes back (the worker died); at least LLM_TIMEOUT_SECONDS.
LLM_RESERVATION_SECONDS = env.int("LLM_RESERVATION_SECONDS", default=300)
if LLM_RESERVATION_SECONDS < LLM_TIMEOUT_SECONDS:
    raise ImproperlyConfigured(
        "LLM_RESERVATION_SECONDS must be at least LLM_TIMEOUT_SECONDS: a reservation has to "
        "outlast the call it holds money for"
    )
# Most days GET /auth/spend?days= may ask for.
SPEND_HISTORY_MAX_DAYS = env.int("SPEND_HISTORY_MAX_DAYS", default=366)
if SPEND_HISTORY_MAX_DAYS < 1:
    raise ImproperlyConfigured("SPEND_HISTORY_MAX_DAYS must be at least 1")

# Projects one user may have at once (0: no cap).
PROJECTS_MAX_PER_USER = env.int("PROJECTS_MAX_PER_USER", default=100)
# Disk in MB the workspace images of one user's projects may take together (each terminal's
# project gets an image of SANDBOX_WORKSPACE_MB); 0: no cap.
WORKSPACE_MAX_TOTAL_MB_PER_USER = env.int("WORKSPACE_MAX_TOTAL_MB_PER_USER", default=2048)
if PROJECTS_MAX_PER_USER < 0:
    raise ImproperlyConfigured("PROJECTS_MAX_PER_USER must be 0 (no cap) or more")
if WORKSPACE_MAX_TOTAL_MB_PER_USER < 0 or (
    0 < WORKSPACE_MAX_TOTAL_MB_PER_USER < SANDBOX_WORKSPACE_MB
):
    raise ImproperlyConfigured(
        "WORKSPACE_MAX_TOTAL_MB_PER_USER must be 0 (no cap) or at least SANDBOX_WORKSPACE_MB "
        "(one workspace image)"
    )

SPENDING_BEAT_SCHEDULE: dict = {
    "spending-expire-reservations": {
        "task": "spending.expire_reservations",
        "schedule": timedelta(seconds=60),
        "options": {"queue": "default", "expires": 60},
    },
}
