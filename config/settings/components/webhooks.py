"""Settings of outgoing webhooks (the ``webhooks`` app), from the environment.

A project's endpoints hear about its runs through signed deliveries (Standard Webhooks). Every
delivery goes through the checked door of ``common.outbound`` (``webhooks_policy``): https only
and no loopback, private or link-local address unless ``WEBHOOKS_ALLOW_LOCAL`` is true. A
failed attempt is tried again after ``WEBHOOKS_RETRY_BASE_SECONDS``, then four times longer each
time (at most ``WEBHOOKS_RETRY_MAX_DELAY_SECONDS`` apart), until ``WEBHOOKS_RETRY_WINDOW_SECONDS``
have passed since the event.
"""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from ..env import env

# Let webhook endpoints be loopback, private or link-local addresses, over plain http:// too
# (tests and single-host setups only; off in any shared deployment).
WEBHOOKS_ALLOW_LOCAL = env.bool("WEBHOOKS_ALLOW_LOCAL", default=False)
# Seconds one delivery attempt may take in all (connection, request and the whole answer).
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=15.0)
# Seconds before the first retry of a failed delivery; each later retry waits four times longer.
WEBHOOKS_RETRY_BASE_SECONDS = env.float("WEBHOOKS_RETRY_BASE_SECONDS", default=5.0)
# Longest wait between two attempts of one delivery, in seconds.
WEBHOOKS_RETRY_MAX_DELAY_SECONDS = env.float("WEBHOOKS_RETRY_MAX_DELAY_SECONDS", default=3 * 3600.0)
# Seconds after its event (or a Redeliver) during which a delivery is tried again; then it fails.
WEBHOOKS_RETRY_WINDOW_SECONDS = env.float("WEBHOOKS_RETRY_WINDOW_SECONDS", default=24 * 3600.0)
# Seconds between the beat's looks for deliveries that are due, lost or held by a dead worker.
WEBHOOKS_SWEEP_SECONDS = env.float("WEBHOOKS_SWEEP_SECONDS", default=5.0)
# Webhook endpoints one project may have.
WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT = env.int("WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT", default=10)

for _name in (
    "WEBHOOKS_TIMEOUT_SECONDS",
    "WEBHOOKS_RETRY_BASE_SECONDS",
    "WEBHOOKS_RETRY_MAX_DELAY_SECONDS",
    "WEBHOOKS_RETRY_WINDOW_SECONDS",
    "WEBHOOKS_SWEEP_SECONDS",
):
    if globals()[_name] <= 0:
        raise ImproperlyConfigured(f"{_name} must be positive")
if WEBHOOKS_RETRY_MAX_DELAY_SECONDS < WEBHOOKS_RETRY_BASE_SECONDS:
    raise ImproperlyConfigured(
        "WEBHOOKS_RETRY_MAX_DELAY_SECONDS must be at least WEBHOOKS_RETRY_BASE_SECONDS"
    )
if WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT < 1:
    raise ImproperlyConfigured("WEBHOOKS_MAX_ENDPOINTS_PER_PROJECT must be at least 1")

WEBHOOKS_BEAT_SCHEDULE: dict = {
    "webhooks-sweep": {
        "task": "webhooks.sweep",
        "schedule": timedelta(seconds=WEBHOOKS_SWEEP_SECONDS),
        "options": {"queue": "default", "expires": WEBHOOKS_SWEEP_SECONDS},
    },
}
