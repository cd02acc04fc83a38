"""Project configuration; loading it also loads the Celery app so shared tasks bind to it."""

import os

# prometheus-client picks its multiprocess mode from this variable when first imported and
# then writes to the directory on the first metric update: make sure it exists in every
# process (web, workers, management commands) before anything counts.
# prometheus-client takes the mere presence of the variable as multiprocess mode, so an
# empty value would scatter its files into the working directory: drop it.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
else:
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
