"""The HTTP side of the ASGI application: Django, handled in one trip to a worker thread.

Django's own ASGI handler runs the middleware chain in async mode: every classic middleware
(session, CSRF, auth, messages...) and every sync view is a separate hop to a thread made
for the request, and that thread is created and joined per request. Profiled under load
(py-spy, GET /projects and /health through daphne) those hops and thread starts were most
of a request's CPU. This handler runs the whole sync chain, as Django's WSGI handler does,
in one call to a shared pool of ``WEB_THREADS`` threads; the event loop only reads the
request and writes the response.

That call is a plain ``run_in_executor`` in a copy of the request's context, not asgiref's
``sync_to_async``: the latter walks every context variable twice per call (re-homing
``Local`` storage into the thread, then copying changes back to the event loop), which
showed as its own line in the profile, and nothing here needs the changes back. The thread
still learns which loop it serves, so ``async_to_sync`` inside it runs on that loop.

Streaming responses keep Django's ASGI behaviour: their (async) content is sent from the
event loop while a client disconnect is listened for, inside a thread-sensitive context of
their own, and the response is closed afterwards. An async view still works: the sync
chain calls it through ``async_to_sync``, which runs it on the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

R = TypeVar("R")


def _run_for_loop(loop: asyncio.AbstractEventLoop, context: contextvars.Context, call: Any) -> Any:
    """In a worker thread: ``call`` in ``context``, with the thread told which loop it serves
    (what ``async_to_sync`` looks up to run a coroutine there rather than on a new loop)."""
    SyncToAsync.threadlocal.main_event_loop = loop
    SyncToAsync.threadlocal.main_event_loop_pid = os.getpid()
    return context.run(call)


class OneTripASGIHandler(ASGIHandler):
    """Django over ASGI with the sync middleware chain run in one worker-thread call."""

    # ASGI 3 (one call returning a coroutine), though ``__call__`` is a plain method.
    _asgi_single_callable = True

    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        self.executor = ThreadPoolExecutor(
            max_workers=settings.WEB_THREADS, thread_name_prefix="http"
        )

    async def _in_thread(self, function: Callable[..., R], *args: Any) -> R:
        """``function(*args)`` in the pool, in a copy of the caller's context."""
        loop = asyncio.get_running_loop()
        call = functools.partial(function, *args)
        return await loop.run_in_executor(  # type: ignore[no-any-return]
            self.executor,
            functools.partial(_run_for_loop, loop, contextvars.copy_context(), call),
        )

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:  # type: ignore[override]
        # The coroutine of ``handle`` itself, not one that awaits it: a frame fewer for every
        # resumption of the request.
        if scope["type"] != "http":
            return self._refuse(scope)
        return self.handle(scope, receive, send)

    @staticmethod
    async def _refuse(scope: dict[str, Any]) -> None:
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")

    def _respond(self, scope: dict[str, Any], body_file: Any) -> HttpResponseBase:
        """The response to the request (in a worker thread); a non-streaming one is also
        closed here, which ends the request (its database connection goes back)."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        response: Any = error_response if request is None else self.get_response(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size
        if not response.streaming:
            response.close()
        return response

    @staticmethod
    def _close(response: HttpResponseBase) -> None:
        response.close()

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            response = await self._in_thread(self._respond, scope, body_file)
            if response.streaming:
                async with ThreadSensitiveContext():
                    await self._stream(response, receive, send)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    async def _stream(self, response: HttpResponseBase, receive: Any, send: Any) -> None:
        """Send a streaming response until it ends or the client goes away, then close it."""
        sending = asyncio.create_task(self.send_response(response, send))
        listening = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait([sending, listening], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (listening, sending):
                if not task.done():
                    task.cancel()
            outcomes = await asyncio.gather(listening, sending, return_exceptions=True)
            await self._in_thread(self._close, response)
        for outcome in outcomes:
            if isinstance(outcome, Exception) and not isinstance(outcome, RequestAborted):
                raise outcome
