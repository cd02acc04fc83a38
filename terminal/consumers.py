"""WebSocket ``/ws/terminal/<project_id>/?ticket=…``: a shell in the sandbox on a PTY.

Admission: the terminal is enabled, the Origin is one of ours (``common.websocket``), the
ticket is consumed (single use, bound to user, project and session), the project still
belongs to that user, and the user is under ``TERMINAL_MAX_PER_USER``. Anything else closes
the handshake (4403 origin, 4401 ticket, 4404 project, 4429 limit, 4503 sandbox unavailable).

Frames in: ``{"type": "input", "data": "…"}`` and ``{"type": "resize", "cols": …, "rows": …}``.
Out: the shell's output as text frames, then ``{"type": "exit", "code": …}`` (with a
``reason`` when the server ended it: idle, max_session, memory, session_revoked).

Nothing here blocks the event loop or the thread Django's database calls share: keystrokes
are written to the non-blocking PTY when it is writable (``add_writer``), output is read
when it is readable (``add_reader``) at most ``TERMINAL_OUTPUT_BYTES_PER_SECOND`` (the shell
then blocks on a full terminal, as on a slow line), and starting, killing, mounting and
memory checks run in worker threads. The session ends after ``TERMINAL_IDLE_SECONDS``
without input, ``TERMINAL_MAX_SECONDS`` in all, when the run's processes together pass
``SANDBOX_TOTAL_MEMORY_MB``, or at once when the session that opened it is revoked.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.db import connections

from accounts.revocation import session_is_live, stream_groups
from common.errors import NotFound
from common.logging import get_logger
from common.websocket import (
    CLOSE_FORBIDDEN,
    CLOSE_NOT_FOUND,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    CLOSE_UNAVAILABLE,
    scope_origin_allowed,
    ticket_from_scope,
)
from projects.quotas import WorkspaceLimitReached
from projects.sandbox import SandboxLimits, SandboxUnavailable
from projects.workspace import WorkspaceLease

from .pty_session import PtySession, PtySessionError
from .services import (
    terminal_lease_acquire,
    terminal_lease_refresh,
    terminal_lease_release,
    terminal_workspace_open,
)
from .tickets import ticket_consume

logger = get_logger(__name__)

T = TypeVar("T")

_TICK = 1.0
# How often (in ticks) the lease is refreshed and the opening session checked in the database.
_REFRESH_TICKS = 15
# One input frame at most (a paste); bigger frames are dropped.
_MAX_INPUT = 65536
# Keystrokes waiting for the shell to read them, at most; more is refused with an error frame.
_MAX_PENDING_INPUT = 1024 * 1024

__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_NOT_FOUND",
    "CLOSE_TOO_MANY",
    "CLOSE_UNAUTHORIZED",
    "CLOSE_UNAVAILABLE",
    "TerminalConsumer",
    "terminal_limits",
]


def terminal_limits() -> SandboxLimits:
    """Sandbox limits of a terminal: the defaults, with the session length as wall time."""
    limits = SandboxLimits()
    limits.wall_seconds = int(settings.TERMINAL_MAX_SECONDS) + 30
    limits.cpu_seconds = max(int(limits.cpu_seconds), int(settings.TERMINAL_MAX_SECONDS))
    return limits


def _closing_connections(func: Callable[..., T]) -> Callable[..., T]:
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        finally:
            connections.close_all()

    return call


async def in_thread(func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking work in a worker thread (never the thread database calls share)."""
    return await asyncio.to_thread(_closing_connections(func), *args, **kwargs)


class TerminalConsumer(AsyncWebsocketConsumer):
    """One browser terminal: admits the socket, runs a ``PtySession``, relays frames."""

    session: PtySession | None = None

    async def connect(self) -> None:
        self.session = None
        self.lease: str | None = None
        self.workspace: WorkspaceLease | None = None
        self.user_id: int | None = None
        self.sid = ""
        self._groups: list[str] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._watchdog_task: asyncio.Task[Any] | None = None
        self._sender_task: asyncio.Task[Any] | None = None
        # Output and the exit frame leave through one queue and one sender: never reordered.
        self._outbox: asyncio.Queue[str | tuple[int, str] | None] = asyncio.Queue()
        self._pending = bytearray()
        self._reading = self._writing = False
        self._finished = False
        project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        if not settings.TERMINAL_ENABLED:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not scope_origin_allowed(self.scope):
            logger.warning("terminal.origin_refused", project_id=project_id)
            await self.close(code=CLOSE_FORBIDDEN)
            return
        claim = await in_thread(
            ticket_consume, ticket=ticket_from_scope(self.scope), project_id=project_id
        )
        if claim is None:
            logger.warning("terminal.ticket_refused", project_id=project_id)
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.user_id, self.sid = claim.user_id, claim.sid
        if not await database_sync_to_async(session_is_live)(self.sid):
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.lease = await in_thread(terminal_lease_acquire, user_id=claim.user_id)
        if self.lease is None:
            await self.close(code=CLOSE_TOO_MANY, reason="too many terminals")
            return
        try:
            self.workspace = await in_thread(
                terminal_workspace_open, user_id=claim.user_id, project_id=project_id
            )
        except NotFound:
            await self._release()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        except WorkspaceLimitReached:  # another terminal made the last image that fitted
            await self._release()
            await self.close(code=CLOSE_FORBIDDEN, reason="workspace_limit")
            return
        session = PtySession(
            workspace=self.workspace.path,
            argv=list(settings.TERMINAL_SHELL),
            limits=terminal_limits(),
        )
        try:
            await in_thread(session.start)
        except SandboxUnavailable as exc:
            logger.error("terminal.sandbox_unavailable", detail=exc.detail)  # noqa: TRY400
            await self._release()
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        except Exception:
            logger.exception("terminal.start_failed", project_id=project_id)
            await self._release()
            await self.close(code=CLOSE_UNAVAILABLE)
            return
        self.session = session
        self._groups = stream_groups(self.sid)
        for group in self._groups:
            await self.channel_layer.group_add(group, self.channel_name)
        self._started = self._last_input = time.monotonic()
        self._bucket = float(settings.TERMINAL_OUTPUT_BYTES_PER_SECOND)
        self._bucket_at = time.monotonic()
        await self.accept()
        logger.info(
            "terminal.opened", user_id=claim.user_id, project_id=project_id, uid=session.uid
        )
        self._sender_task = asyncio.ensure_future(self._sender())
        self._resume_reading()
        self._watchdog_task = asyncio.ensure_future(self._watchdog())

    # --- frames in -----------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Input and resize frames; anything else is ignored."""
        if self.session is None:
            return
        try:
            frame = json.loads(text_data or (bytes_data or b"").decode("utf-8", "replace"))
        except ValueError:
            return
        if not isinstance(frame, dict):
            return
        try:
            data = frame.get("data")
            if frame.get("type") == "input" and isinstance(data, str) and len(data) <= _MAX_INPUT:
                self._last_input = time.monotonic()
                self._queue_input(data.encode("utf-8"))
            elif frame.get("type") == "resize":
                self.session.resize(int(frame.get("cols", 0)), int(frame.get("rows", 0)))
        except (PtySessionError, ValueError, TypeError, OSError) as exc:
            await self.send(text_data=json.dumps({"type": "error", "detail": str(exc)}))

    def _queue_input(self, data: bytes) -> None:
        if len(self._pending) + len(data) > _MAX_PENDING_INPUT:
            raise PtySessionError("The terminal is not reading its input; input dropped.")
        self._pending += data
        self._on_writable()

    def _on_writable(self) -> None:
        """Write what the PTY takes now; wait for writability for the rest."""
        if self.session is None:
            self._pending.clear()
            return
        try:
            while self._pending:
                written = os.write(self.session.fd, self._pending)
                del self._pending[:written]
        except BlockingIOError:
            pass
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            self._pending.clear()  # the shell is gone; its exit ends the session
        loop = asyncio.get_running_loop()
        if self._pending and not self._writing:
            loop.add_writer(self.session.fd, self._on_writable)
            self._writing = True
        elif not self._pending and self._writing:
            loop.remove_writer(self.session.fd)
            self._writing = False

    # --- output out ----------------------------------------------------------------------

    def _resume_reading(self) -> None:
        if self.session is None or self._reading or self._finished:
            return
        asyncio.get_running_loop().add_reader(self.session.fd, self._on_readable)
        self._reading = True

    def _pause_reading(self) -> None:
        if self.session is not None and self._reading:
            asyncio.get_running_loop().remove_reader(self.session.fd)
        self._reading = False

    def _stop_writing(self) -> None:
        if self.session is not None and self._writing:
            asyncio.get_running_loop().remove_writer(self.session.fd)
        self._writing = False

    def _on_readable(self) -> None:
        """Read what the rate allows; pause the PTY when the budget is spent."""
        if self.session is None:
            return
        rate = float(settings.TERMINAL_OUTPUT_BYTES_PER_SECOND)
        now = time.monotonic()
        self._bucket = min(rate, self._bucket + (now - self._bucket_at) * rate)
        self._bucket_at = now
        if self._bucket < 1:
            self._pause_reading()
            asyncio.get_running_loop().call_later((1 - self._bucket) / rate, self._resume_reading)
            return
        data = self.session.read(int(self._bucket))
        if data is None:
            self._pause_reading()
            self._tasks.append(asyncio.ensure_future(self._finish(reason="exited")))
            return
        self._bucket -= len(data.encode("utf-8"))
        if data:
            self._outbox.put_nowait(data)

    async def _sender(self) -> None:
        """Send queued frames in order; a ``(code, reason)`` item closes the socket."""
        while True:
            frame = await self._outbox.get()
            if frame is None:
                await self.close()
                return
            if isinstance(frame, tuple):
                await self.close(code=frame[0], reason=frame[1])
                return
            await self.send(text_data=frame)

    async def _watchdog(self) -> None:
        """End the session when idle, too long, over memory, or no longer signed in."""
        ticks = 0
        limit_mb = int(settings.SANDBOX_TOTAL_MEMORY_MB)
        while not self._finished:
            await asyncio.sleep(_TICK)
            ticks += 1
            now = time.monotonic()
            if now - self._last_input > settings.TERMINAL_IDLE_SECONDS:
                await self._finish(reason="idle")
            elif now - self._started > settings.TERMINAL_MAX_SECONDS:
                await self._finish(reason="max_session")
            elif self.session is not None and await in_thread(self.session.over_memory, limit_mb):
                await self._finish(reason="memory")
            elif ticks % _REFRESH_TICKS == 0:
                await self._refresh()

    async def _refresh(self) -> None:
        if self.lease is not None and self.user_id is not None:
            await in_thread(terminal_lease_refresh, user_id=self.user_id, lease=self.lease)
        # Revocation is pushed at once (session_revoked); this catches a lost push.
        if not await database_sync_to_async(session_is_live)(self.sid):
            await self._finish(reason="session_revoked")

    async def session_revoked(self, message: dict[str, Any]) -> None:
        """The session that opened this terminal was signed out: end it now."""
        await self._finish(reason="session_revoked")

    async def _finish(self, *, reason: str) -> None:
        """Kill the shell, send the exit frame, close the socket."""
        if self._finished:
            return
        self._finished = True
        self._pause_reading()
        self._stop_writing()
        code = await self._stop_session()
        logger.info("terminal.closed", user_id=self.user_id, reason=reason, code=code)
        frame: dict[str, Any] = {"type": "exit", "code": code}
        if reason != "exited":
            frame["reason"] = reason
        self._outbox.put_nowait(json.dumps(frame))
        if reason == "session_revoked":
            self._outbox.put_nowait((CLOSE_UNAUTHORIZED, "session revoked"))
        else:
            self._outbox.put_nowait(None)

    async def _stop_session(self) -> int | None:
        session, self.session = self.session, None
        code: int | None = None
        if session is not None:
            code = session.exit_code()
            if code is None:
                code = await in_thread(session.wait, 0.5)
            closed = await in_thread(session.close)
            code = code if code is not None else closed
        await self._release()
        return code

    async def _release(self) -> None:
        workspace, self.workspace = self.workspace, None
        if workspace is not None:
            await in_thread(workspace.release)
        if self.lease is not None and self.user_id is not None:
            lease, self.lease = self.lease, None
            await in_thread(terminal_lease_release, user_id=self.user_id, lease=lease)
        groups, self._groups = self._groups, []
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        """The browser went away: kill the shell's whole process tree."""
        self._finished = True
        self._pause_reading()
        self._stop_writing()
        for task in (getattr(self, "_watchdog_task", None), getattr(self, "_sender_task", None)):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        await self._stop_session()
