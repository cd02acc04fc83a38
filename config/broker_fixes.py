"""Two changes to kombu 5.7's Redis transport (Celery 5.7): a worker stays alive through a
Redis restart, and a channel keeps one Redis client for its commands.

*Through a restart.* When the broker connection is lost while an ``acks_late`` task runs,
the consumer collects the connection (its transport is dropped) and then closes it; closing
the channel restores the unacknowledged messages through that dropped transport and raises
``AttributeError`` (``'NoneType' object has no attribute 'hostname'``), which
``ignore_errors`` does not catch: the worker exits with "Unrecoverable error". The task that
was running then finishes and acks its message on the same dead channel, which raises the
same error in the event loop.

Both errors mean only "this connection is gone". They are treated like the connection
errors they stand for: the worker reconnects and goes on consuming. A message that could
not be acknowledged is delivered again later (after the broker's visibility timeout), and
every pipeline task is safe to run twice.

*One client per channel.* A channel's ``conn_or_acquire`` built a new ``redis.Redis`` for
every command it sends outside its event loop: each task message published, each
acknowledgement, each task event for Flower (a client copies some 160 response callbacks
into a case-insensitive dict: about 0.15 ms of CPU each time). The client holds no
connection of its own (each command borrows one from the channel's pool and returns it) and
is safe to share between threads, so the channel keeps the one it built and builds another
only when its pool was replaced (after a fork, or a disconnect).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.connection import Connection
from kombu.message import Message
from kombu.transport.redis import Channel

_APPLIED = "_aiflow_tolerates_collected_transport"
# Where a channel keeps its shared client (beside kombu's cached ``client``, which is the
# event loop's and must not be used from other threads).
_SHARED_CLIENT = "_aiflow_shared_client"


@contextmanager
def _conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:  # a redis Channel
    """``client`` if given, else the channel's shared client for its current pool."""
    if client:
        yield client
        return
    shared = self.__dict__.get(_SHARED_CLIENT)
    if shared is None or shared.connection_pool is not self.pool:
        shared = self._create_client()
        self.__dict__[_SHARED_CLIENT] = shared
    yield shared


def broker_fixes_apply() -> None:
    """Install the two tolerances and the shared client described above (once per process)."""
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
    Channel.conn_or_acquire = _conn_or_acquire  # type: ignore[method-assign]
    setattr(Connection, _APPLIED, True)
