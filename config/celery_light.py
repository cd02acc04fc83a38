"""The Celery app of the processes that run no task: beat and Flower.

It reads the same settings as ``config.celery`` (broker, result backend, queues, routes,
the beat schedule) but leaves Django unset and imports no task module: beat sends its
entries by task name, and Flower learns tasks from the workers' events (when
``FLOWER_TASK_EVENTS`` turns them on). Each of the two thus loads Celery and the settings
only, not the application (Django's apps, the models, the pipeline, LangChain), which every
worker and web process needs and they do not.
"""

import os

from celery import Celery
from kombu import Queue

from config.broker_fixes import broker_fixes_apply

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
broker_fixes_apply()

# fixups=[]: no Django fix-up, which would set Django up before the (absent) task imports.
app = Celery("aiflow", fixups=[])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue(name) for name in ("llm", "sandbox", "default")]
