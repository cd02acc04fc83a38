"""Process-local fan-out of Channels group messages: one channel per group per process.

Every SSE stream and run socket of a process that watches run 5 subscribes here instead of
putting a channel of its own into the group ``run-5``: the first subscriber joins one
channel of this process to the group and starts one reader task on it; the reader copies
each message into the queue of every local subscriber; the last one to leave takes the
channel out of the group. A ``group_send`` then costs one member (one Redis entry, one
message to decode) per process however many clients watch the run, and the group stays
small. The same goes for a session's group: ``session.revoked`` reaches every stream of
the session in this process through the one channel.

A sender with several messages for one group sends them as one ``fanout.batch`` message
(``fanout_batch``): one ``group_send`` (two Redis round trips and a script) instead of one
per message; the reader hands them to each subscriber one by one, in order.

A subscriber whose queue fills up (a client that stopped reading) loses the backlog and
gets one ``fanout.lost`` message instead; so does every subscriber of a group whose channel
could not be read. Readers take events from the table then: a push is only a hint.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from typing import Any

from common.logging import get_logger

logger = get_logger(__name__)

#: The message a subscriber gets in place of what it may have missed.
LOST_MESSAGE_TYPE = "fanout.lost"
#: Several messages sent to a group as one (``fanout_batch``); subscribers get each of them.
BATCH_MESSAGE_TYPE = "fanout.batch"
# Messages a subscriber may have waiting before it is told it missed some.
_QUEUE_SIZE = 1000
# Group membership in channels-redis expires after a day (``group_expiry``); a channel that
# outlives this is joined again by the next subscriber.
_REJOIN_SECONDS = 3600.0
# How long a reader whose layer failed waits before it tries again.
_RETRY_SECONDS = 1.0


class Subscription:
    """One stream's queue of the messages sent to its groups, in arrival order."""

    def __init__(self, fanout: FanOut) -> None:
        self._fanout = fanout
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(_QUEUE_SIZE)
        self.groups: list[_Group] = []

    def deliver(self, message: dict[str, Any]) -> None:
        """Queue ``message``; a full queue is emptied and left with one ``fanout.lost``."""
        try:
            self._queue.put_nowait(message)
        except asyncio.QueueFull:
            while not self._queue.empty():
                self._queue.get_nowait()
            self._queue.put_nowait({"type": LOST_MESSAGE_TYPE})

    async def receive(self, timeout: float) -> list[dict[str, Any]]:
        """Wait up to ``timeout`` seconds for a message; all the waiting ones ([] if none)."""
        try:
            first = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return []
        messages = [first]
        while not self._queue.empty():
            messages.append(self._queue.get_nowait())
        return messages

    async def close(self) -> None:
        """Leave every group (the last local subscriber of one takes its channel out)."""
        await self._fanout.unsubscribe(self)


class _Group:
    joined: asyncio.Future[None]  # the channel's join, shared by the subscribers waiting on it

    def __init__(self, name: str) -> None:
        self.name = name
        self.channel: str | None = None
        self.subscribers: set[Subscription] = set()
        self.reader: asyncio.Task[None] | None = None
        self.joined_at = time.monotonic()


class FanOut:
    """The groups this process (one event loop) listens to, each through one channel."""

    def __init__(self, layer: Any, *, source: Any = None) -> None:
        self.layer = layer
        #: The process's default layer this one was made after (``layer`` itself if None).
        self.source = source if source is not None else layer
        self._groups: dict[str, _Group] = {}
        #: How many times a channel of this process joined a group (a test's measure).
        self.joins = 0

    def channels(self, group: str) -> int:
        """How many channels of this process are in ``group`` (0 or 1)."""
        return 1 if group in self._groups else 0

    def subscribers(self, group: str) -> int:
        """How many local subscribers ``group`` has."""
        entry = self._groups.get(group)
        return len(entry.subscribers) if entry is not None else 0

    async def subscribe(self, groups: list[str]) -> Subscription:
        """A queue of every message sent to ``groups`` from now on; raises if one cannot be
        joined (the caller then polls the table)."""
        subscription = Subscription(self)
        try:
            for name in groups:
                group = self._groups.get(name)
                if group is None:
                    group = self._groups[name] = _Group(name)
                    group.joined = asyncio.ensure_future(self._join(group))
                joined = group.joined
                group.subscribers.add(subscription)
                subscription.groups.append(group)
                if group.channel is not None and time.monotonic() - group.joined_at > (
                    _REJOIN_SECONDS
                ):
                    group.joined_at = time.monotonic()
                    await self.layer.group_add(name, group.channel)
                # Shielded: one subscriber giving up must not cancel the join the others share.
                await asyncio.shield(joined)
        except BaseException:
            await self.unsubscribe(subscription)
            raise
        return subscription

    async def unsubscribe(self, subscription: Subscription) -> None:
        """Drop ``subscription``; a group left without local subscribers is left. Never raises."""
        groups, subscription.groups = subscription.groups, []
        for group in groups:
            group.subscribers.discard(subscription)
            if group.subscribers or self._groups.get(group.name) is not group:
                continue
            del self._groups[group.name]  # a new subscriber from now on joins afresh
            await self._leave(group)

    async def _join(self, group: _Group) -> None:
        try:
            channel = await self.layer.new_channel()
            await self.layer.group_add(group.name, channel)
        except BaseException:
            if self._groups.get(group.name) is group:
                del self._groups[group.name]
            raise
        group.channel = channel
        self.joins += 1
        if self._groups.get(group.name) is not group:  # every subscriber left meanwhile
            await self._discard(group.name, channel)
            return
        group.reader = asyncio.ensure_future(self._read(group, channel))

    async def _leave(self, group: _Group) -> None:
        # The reader is cancelled before the first await: a subscriber cancelled twice leaves
        # no reader behind.
        if not group.joined.done():
            return  # ``_join`` finds the group gone and takes its channel out itself
        if group.reader is not None:
            group.reader.cancel()
            # Let the layer's receive unwind (channels-redis counts its receivers).
            await asyncio.gather(group.reader, return_exceptions=True)
        if group.channel is not None:
            await self._discard(group.name, group.channel)

    async def _discard(self, name: str, channel: str) -> None:
        try:
            await self.layer.group_discard(name, channel)
        except Exception:  # channels-redis drops the member after group_expiry anyway
            logger.warning("fanout.leave_failed", group=name, exc_info=True)

    async def _read(self, group: _Group, channel: str) -> None:
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("fanout.receive_failed", group=group.name, exc_info=True)
                message = {"type": LOST_MESSAGE_TYPE}
                await asyncio.sleep(_RETRY_SECONDS)
            batch = message.get("messages") if message.get("type") == BATCH_MESSAGE_TYPE else None
            for one in batch if isinstance(batch, list) else [message]:
                for subscription in list(group.subscribers):
                    subscription.deliver(one)


def fanout_batch(messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The one group message that hands ``messages`` (two or more) to every subscriber, in
    order (a single message is sent as it is)."""
    return {"type": BATCH_MESSAGE_TYPE, "messages": messages}


_fanouts: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FanOut] = weakref.WeakKeyDictionary()


def fanout_get() -> FanOut | None:
    """This event loop's fan-out over the default channel layer (None without a layer).

    It reads through a layer instance of its own: channels-redis lets one event loop at a
    time receive on an instance, and a process may run more than one loop (tests do), while
    groups live in Redis and reach every instance. The in-memory layer keeps its groups in
    the instance, so that one is shared.
    """
    from channels.layers import (
        DEFAULT_CHANNEL_LAYER,
        InMemoryChannelLayer,
        channel_layers,
        get_channel_layer,
    )

    source = get_channel_layer()
    if source is None:
        return None
    loop = asyncio.get_running_loop()
    fanout = _fanouts.get(loop)
    if fanout is None or fanout.source is not source:
        shared = isinstance(source, InMemoryChannelLayer)
        layer = source if shared else channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        fanout = _fanouts[loop] = FanOut(layer, source=source)
    return fanout


async def fanout_subscribe(groups: list[str]) -> Subscription | None:
    """Subscribe to ``groups`` in this process; None without a layer or when joining failed."""
    fanout = fanout_get()
    if fanout is None:
        return None
    try:
        return await fanout.subscribe(groups)
    except Exception:
        logger.warning("fanout.subscribe_failed", groups=groups, exc_info=True)
        return None
