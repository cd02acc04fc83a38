"""The Celery application: Redis broker, late acks, three queues, events for Flower."""

import os

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("aiflow")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("llm", "sandbox", "default")]
app.conf.imports = ["common.tasks"]
app.autodiscover_tasks()


@before_task_publish.connect
def _carry_request_id(headers: dict | None = None, **_: object) -> None:
    """Put the current request id into the message so the task's logs carry it."""
    from common.logging import get_request_id

    request_id = get_request_id()
    if headers is not None and request_id and "request_id" not in headers:
        headers["request_id"] = request_id


@task_prerun.connect
def _bind_request_id(task: object = None, **_: object) -> None:
    from common.logging import bind_request_id

    request = getattr(task, "request", None)
    bind_request_id(getattr(request, "request_id", None) if request else None)


@task_postrun.connect
def _unbind_request_id(**_: object) -> None:
    from common.logging import bind_request_id

    bind_request_id(None)
