"""Settings of the pipeline part of the platform, read from the environment."""

from ..env import env  # noqa: F401

PIPELINE_BEAT_SCHEDULE: dict = {}
