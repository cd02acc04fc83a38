"""WebSocket ``/ws/terminal/<project_id>/?ticket=…``: a shell in the sandbox on a PTY.

Admission: the terminal is enabled, the Origin is one of ours (``CSRF_TRUSTED_ORIGINS`` or a
host in ``ALLOWED_HOSTS``), the ticket is consumed (single use, bound to user and project),
the project still belongs to that user, and the user is under ``TERMINAL_MAX_PER_USER``.
Anything else closes the handshake (4403 origin, 4401 ticket, 4404 project, 4429 limit,
4503 sandbox unavailable).

Frames in: ``{"type": "input", "data": "…"}`` and ``{"type": "resize", "cols": …, "rows": …}``.
Out: the shell's output as text frames, then ``{"type": "exit", "code": …}``. Output is
capped at ``TERMINAL_OUTPUT_BYTES_PER_SECOND`` by pausing reads from the PTY (the shell then
blocks on a full terminal, as on a slow line); the session ends after
``TERMINAL_IDLE_SECONDS`` without input or ``TERMINAL_MAX_SECONDS`` in all. The PTY
lifecycle is ``terminal.pty_session.PtySession``; this class only translates.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http.request import validate_host

from common.errors import NotFound
from common.logging import get_logger
from projects.sandbox import SandboxLimits, SandboxUnavailable
from projects.workspace import WorkspaceLease

from .pty_session import PtySession, PtySessionError
from .services import (
    terminal_lease_acquire,
    terminal_lease_release,
    terminal_workspace_open,
)
from .tickets import ticket_consume

logger = get_logger(__name__)

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_MANY = 4429
CLOSE_UNAVAILABLE = 4503
_TICK = 1.0
# One input frame at most (a paste); bigger frames are dropped.
_MAX_INPUT = 65536


def origin_allowed(origin: str | None) -> bool:
    """True for an Origin this deployment serves: a trusted origin, or an allowed host."""
    if not origin:
        return False
    if origin.rstrip("/") in {o.rstrip("/") for o in settings.CSRF_TRUSTED_ORIGINS}:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return validate_host(host, settings.ALLOWED_HOSTS)


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def terminal_limits() -> SandboxLimits:
    """Sandbox limits of a terminal: the defaults, with the session length as wall time."""
    limits = SandboxLimits()
    limits.wall_seconds = int(settings.TERMINAL_MAX_SECONDS) + 30
    limits.cpu_seconds = max(int(limits.cpu_seconds), int(settings.TERMINAL_MAX_SECONDS))
    return limits


class TerminalConsumer(AsyncWebsocketConsumer):
    """One browser terminal: admits the socket, runs a ``PtySession``, relays frames."""

    session: PtySession | None = None

    async def connect(self) -> None:
        self.session = None
        self.lease: str | None = None
        self.workspace: WorkspaceLease | None = None
        self.user_id: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._watchdog_task: asyncio.Task[Any] | None = None
        self._sender_task: asyncio.Task[Any] | None = None
        # Output and the exit frame leave through one queue and one sender: never reordered.
        self._outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self._reading = False
        self._finished = False
        project_id = int(self.scope["url_route"]["kwargs"]["project_id"])
        if not settings.TERMINAL_ENABLED:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if not origin_allowed(_header(self.scope, b"origin")):
            logger.warning("terminal.origin_refused", origin=_header(self.scope, b"origin"))
            await self.close(code=CLOSE_FORBIDDEN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        ticket = (query.get("ticket") or [None])[0]
        claim = await sync_to_async(ticket_consume)(ticket=ticket, project_id=project_id)
        if claim is None:
            logger.warning("terminal.ticket_refused", project_id=project_id)
            await self.close(code=CLOSE_UNAUTHORIZED)
            return
        self.user_id = claim.user_id
        self.lease = await sync_to_async(terminal_lease_acquire)(user_id=claim.user_id)
        if self.lease is None:
            await self.close(code=CLOSE_TOO_MANY)
            return
        try:
            self.workspace = await sync_to_async(terminal_workspace_open)(
                user_id=claim.user_id, project_id=project_id
            )
        except NotFound:
            await self._release()
            await self.close(code=CLOSE_NOT_FOUND)
            return
        session = PtySession(
            workspace=self.workspace.path,
            argv=list(settings.TERMINAL_SHELL),
            limits=terminal_limits(),
        )
        try:
            await sync_to_async(session.start)()
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
                await sync_to_async(self.session.write)(frame["data"])
            elif frame.get("type") == "resize":
                self.session.resize(int(frame.get("cols", 0)), int(frame.get("rows", 0)))
        except (PtySessionError, ValueError, TypeError, OSError) as exc:
            await self.send(text_data=json.dumps({"type": "error", "detail": str(exc)}))

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
        """Send queued frames in order; ``None`` closes the socket."""
        while True:
            frame = await self._outbox.get()
            if frame is None:
                await self.close()
                return
            await self.send(text_data=frame)

    async def _watchdog(self) -> None:
        """End the session when idle too long or open too long."""
        while not self._finished:
            await asyncio.sleep(_TICK)
            now = time.monotonic()
            if now - self._last_input > settings.TERMINAL_IDLE_SECONDS:
                await self._finish(reason="idle")
            elif now - self._started > settings.TERMINAL_MAX_SECONDS:
                await self._finish(reason="max_session")

    async def _finish(self, *, reason: str) -> None:
        """Kill the shell, send the exit frame, close the socket."""
        if self._finished:
            return
        self._finished = True
        self._pause_reading()
        code = await self._stop_session()
        logger.info("terminal.closed", user_id=self.user_id, reason=reason, code=code)
        frame: dict[str, Any] = {"type": "exit", "code": code}
        if reason != "exited":
            frame["reason"] = reason
        self._outbox.put_nowait(json.dumps(frame))
        self._outbox.put_nowait(None)

    async def _stop_session(self) -> int | None:
        session, self.session = self.session, None
        code: int | None = None
        if session is not None:
            code = session.exit_code()
            if code is None:
                code = await sync_to_async(session.wait)(0.5)
            closed = await sync_to_async(session.close)()
            code = code if code is not None else closed
        await self._release()
        return code

    async def _release(self) -> None:
        workspace, self.workspace = getattr(self, "workspace", None), None
        if workspace is not None:
            await sync_to_async(workspace.release)()
        if self.lease is not None and self.user_id is not None:
            lease, self.lease = self.lease, None
            await sync_to_async(terminal_lease_release)(user_id=self.user_id, lease=lease)

    async def disconnect(self, code: int) -> None:
        """The browser went away: kill the shell's whole process tree."""
        self._finished = True
        self._pause_reading()
        for task in (getattr(self, "_watchdog_task", None), getattr(self, "_sender_task", None)):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
        await self._stop_session()
