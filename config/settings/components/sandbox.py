"""Settings of the sandbox part of the platform, read from the environment."""

from ..env import env  # noqa: F401

SANDBOX_BEAT_SCHEDULE: dict = {}
