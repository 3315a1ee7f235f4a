"""The idle timeout on request bodies (`http.bodyIdleTimeout`).

A client that stops sending its body, or sends a byte now and then, would otherwise hold what
its request holds (an upload session's lock, open files, a manifest's bytes in memory) for as
long as it likes. Here, when the application has waited that long for the next piece of a body,
the wait ends with 408 REQUEST_TIMEOUT; the handler's usual clean-up runs, so the session stays
usable and keeps the bytes received before the stall (as after a dropped connection).

One place for every body reader (handlers, the cluster proxy): the ASGI `receive`. Only time
spent waiting for the client counts; time the application spends on a piece (writing it to
storage) does not. One timer per request, re-armed lazily: a timer per `receive` would cost
more than the rest of the wrapper on a fast upload.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg.errors import ErrorCode, RegistryError
from ocireg.server.unread import body_expected


class BodyIdleTimeout:
    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.seconds <= 0 or not body_expected(scope):
            await self.app(scope, receive, send)
            return
        watch = _Watch(receive, self.seconds)
        try:
            await self.app(scope, watch.receive, send)
        finally:
            watch.stop()


def idle_error(seconds: float) -> RegistryError:
    return RegistryError(
        ErrorCode.REQUEST_TIMEOUT,
        detail={"bodyIdleTimeout": f"{seconds:g}s"},
        # The rest of the body, if it ever comes, is not a next request.
        headers={"Connection": "close"},
    )


class _Watch:
    __slots__ = ("_loop", "_receive", "_seconds", "_task", "_timer", "_waiting_since", "state")

    def __init__(self, receive: Receive, seconds: float) -> None:
        self._receive = receive
        self._seconds = seconds
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[object] | None = None  # the one waiting for the client now
        self._waiting_since = 0.0
        self.state = "body"  # "body" until the last piece, then "done"; "expired" after 408

    async def receive(self) -> Message:
        if self.state == "done":  # later calls wait for a disconnect: not a body
            return await self._receive()
        if self.state == "expired":  # a handler draining the body after the error
            raise idle_error(self._seconds)
        task = asyncio.current_task()
        self._task = task
        self._waiting_since = self._loop.time()
        if self._timer is None:
            self._timer = self._loop.call_at(self._waiting_since + self._seconds, self._check)
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if self.state != "expired" or task is None:
                raise
            task.uncancel()  # our own cancellation: it becomes the error, not a cancel
            raise idle_error(self._seconds) from None
        finally:
            self._task = None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.state = "done"
            self.stop()
        return message

    def _check(self) -> None:
        self._timer = None
        if self._task is None:
            return  # the application is busy, not waiting: the next wait arms a timer again
        due = self._waiting_since + self._seconds
        if self._loop.time() < due:
            self._timer = self._loop.call_at(due, self._check)
            return
        self.state = "expired"
        self._task.cancel()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
