"""Development settings: `make up` on a workstation."""

from .base import *  # noqa: F403
from .env import env

# Development: debug on unless turned off.
DEBUG = env.bool("DJANGO_DEBUG", default=True)
