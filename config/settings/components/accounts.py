"""Settings of the accounts part of the platform, read from the environment."""

from ..env import env  # noqa: F401

ACCOUNTS_BEAT_SCHEDULE: dict = {}
