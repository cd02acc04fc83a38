"""make bench counts the SQL statements of each run in every process (BENCH_COUNT_STATEMENTS)."""

import pytest
import redis
from django.core.signals import request_finished
from django.db import connection
from django.db.backends.signals import connection_created

from common.statements import (
    STATEMENTS_KEY,
    _count,
    statements_bind_run,
    statements_flush,
    statements_install,
    statements_read,
)
from pipeline.models import Run


@pytest.fixture
def counting(settings):
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.delete(STATEMENTS_KEY)
    statements_install()
    connection.close()  # the next statement opens a connection, which gets the wrapper
    yield client
    statements_bind_run(None)
    connection_created.disconnect(dispatch_uid="bench-statements")
    request_finished.disconnect(dispatch_uid="bench-statements-flush")
    if _count in connection.execute_wrappers:
        connection.execute_wrappers.remove(_count)
    client.delete(STATEMENTS_KEY)


@pytest.mark.django_db(transaction=True)
def test_statements_count_against_the_run_of_the_task_that_sent_them(counting):
    statements_bind_run(41)
    list(Run.objects.filter(id=0))
    Run.objects.filter(id=1).exists()
    statements_bind_run(None)
    list(Run.objects.filter(id=2))
    statements_flush()

    assert statements_read(counting) == {"41": 2, "other": 1}


@pytest.mark.django_db(transaction=True)
def test_a_flush_adds_to_what_other_processes_counted(counting):
    counting.hincrby(STATEMENTS_KEY, "41", 5)
    statements_bind_run(41)
    list(Run.objects.filter(id=0))
    statements_flush()
    statements_flush()  # nothing new: nothing added twice

    assert statements_read(counting) == {"41": 6}
