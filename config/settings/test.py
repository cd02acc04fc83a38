"""Settings for pytest: the real PostgreSQL (its own test database) and Redis (its own db).

Parallel checkouts on one machine pick their own test database and Redis db index with
``TEST_DB_NAME`` and ``TEST_REDIS_URL``; the development values are never used by tests.
"""

import os
import tempfile

_test_redis = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
for _name in ("REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
    os.environ[_name] = _test_redis
os.environ.setdefault("MEDIA_ROOT", os.path.join(tempfile.gettempdir(), "aiflow-test-media"))

from .base import *  # noqa: E402, F403
from .base import DATABASES  # noqa: E402

DEBUG = False
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("TEST_DB_NAME", "test_aiflow")}
# Fast hashing keeps the suite quick; production keeps Argon2 (base.py).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
