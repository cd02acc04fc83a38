"""config.broker_fixes: a broker channel sends its commands through one Redis client."""

from typing import Any

from django.conf import settings
from kombu import Connection

from config.broker_fixes import broker_fixes_apply


def test_a_channel_keeps_one_client_until_its_pool_is_replaced() -> None:
    broker_fixes_apply()
    with Connection(settings.CELERY_BROKER_URL) as conn:
        channel: Any = conn.default_channel
        with channel.conn_or_acquire() as first:
            first.ping()
        with channel.conn_or_acquire() as second:
            assert second is first
        given = object()
        with channel.conn_or_acquire(given) as passed:
            assert passed is given

        channel._disconnect_pools()  # as after a fork: a new pool, so a new client
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool
            assert third.ping()
