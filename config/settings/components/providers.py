"""Settings of the providers part of the platform, read from the environment."""

from ..env import env  # noqa: F401

PROVIDERS_BEAT_SCHEDULE: dict = {}
