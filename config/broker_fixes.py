"""Keep a worker alive through a Redis restart (Celery 5.7 / kombu 5.7 with the Redis broker).

When the broker connection is lost while an ``acks_late`` task runs, the consumer collects
the connection (its transport is dropped) and then closes it; closing the channel restores
the unacknowledged messages through that dropped transport and raises ``AttributeError``
(``'NoneType' object has no attribute 'hostname'``), which ``ignore_errors`` does not catch:
the worker exits with "Unrecoverable error". The task that was running then finishes and
acks its message on the same dead channel, which raises the same error in the event loop.

Both errors mean only "this connection is gone". They are treated like the connection
errors they stand for: the worker reconnects and goes on consuming. A message that could
not be acknowledged is delivered again later (after the broker's visibility timeout), and
every pipeline task is safe to run twice.
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.connection import Connection
from kombu.message import Message

_APPLIED = "_aiflow_tolerates_collected_transport"


def broker_fixes_apply() -> None:
    """Install the two tolerances described above (once per process)."""
    if getattr(Connection, _APPLIED, False):
        return
    close_channel = Connection.maybe_close_channel
    ack_log_error = Message.ack_log_error

    def maybe_close_channel(self: Connection, channel: Any) -> None:
        try:
            close_channel(self, channel)
        except AttributeError:  # the transport was already collected: nothing left to close
            logging.getLogger(__name__).warning("broker.channel_close_after_collect")

    def tolerant_ack_log_error(
        self: Message, logger: Any, errors: tuple[type[BaseException], ...], multiple: bool = False
    ) -> None:
        # An ack on a channel whose transport was collected is an ack on a lost connection.
        ack_log_error(self, logger, (*errors, AttributeError), multiple)

    Connection.maybe_close_channel = maybe_close_channel  # type: ignore[method-assign]
    Message.ack_log_error = tolerant_ack_log_error  # type: ignore[method-assign]
    setattr(Connection, _APPLIED, True)
