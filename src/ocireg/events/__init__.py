"""zot's `extensions.events`: what happened to repositories and images, sent as CloudEvents
(https://cloudevents.io) to the configured sinks (HTTP or NATS: `events/sinks.py`), as zot
sends them.

The types are zot's: `zotregistry.repository.created` (the first upload or push into a
repository), `zotregistry.image.updated` (a manifest put that changed index.json: a tag set
or moved, or a manifest stored by digest; a put of what is there already sends nothing),
`zotregistry.image.deleted` (a tag or a manifest deleted) and
`zotregistry.image.lint_failed` (a push `extensions.lint` refused). The source is zot's too
(`zotregistry.dev`), so a consumer written for zot reads these as they are. Their data holds
`name` (the repository), `reference`, `digest`, `mediaType` and, for updates and lint
failures, `manifest` (its text), with `actor` (`name`: the authenticated user) and
`request` (`addr`, `method`, `useragent`) of the request that caused it.

Events are sent after the change is stored and answered for, by one task per sink in each
worker process, in the order they happened; a sink that fails or does not answer in its
timeout loses that event (logged), as in zot, and delays no other sink. Each sink's queue is
bounded (QUEUE_MAX events, QUEUE_BYTES of manifests): past it new events are dropped and
counted in the log, rather than requests waiting for a slow sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the library is imported only where sinks are configured (`_publish`)
    from cloudevents.core.v1.event import CloudEvent

log = logging.getLogger("ocireg.events")

SOURCE = "zotregistry.dev"
REPOSITORY_CREATED = "zotregistry.repository.created"
IMAGE_UPDATED = "zotregistry.image.updated"
IMAGE_DELETED = "zotregistry.image.deleted"
IMAGE_LINT_FAILED = "zotregistry.image.lint_failed"
QUEUE_MAX = 10_000  # events waiting per sink
QUEUE_BYTES = 64 << 20  # bytes of manifest text waiting per sink (a manifest: up to 4 MiB)
CLOSE_WAIT = 5.0  # seconds a stopping worker gives its sinks for what is queued


@dataclass(frozen=True)
class Origin:
    """Who and what request caused an event, read when the event is made (the user is
    known only once authentication has run)."""

    user: Callable[[], str | None]
    addr: Callable[[], str]
    method: str
    user_agent: str

    def fields(self) -> dict[str, Any]:
        request = {"addr": self.addr(), "method": self.method, "useragent": self.user_agent}
        user = self.user()
        return {"request": request} | ({"actor": {"name": user}} if user else {})


# Set for each request that may change something (server/context.py).
origin: contextvars.ContextVar[Origin | None] = contextvars.ContextVar(
    "ocireg_event_origin", default=None
)


class Sink(Protocol):
    async def emit(self, event: CloudEvent) -> None:
        """Deliver one event; raises when it was not taken."""
        ...

    async def close(self) -> None: ...


class Recorder:
    def __init__(self, sinks: Sequence[Sink] = ()) -> None:
        self.sinks = tuple(sinks)
        self._lanes: list[_Lane] | None = None  # made with the first event of the process

    @property
    def enabled(self) -> bool:
        return bool(self.sinks)

    def repository_created(self, name: str) -> None:
        self._publish(REPOSITORY_CREATED, {"name": name})

    def image_updated(
        self, name: str, reference: str, digest: str, media_type: str, manifest: bytes
    ) -> None:
        self._publish(IMAGE_UPDATED, _image(name, reference, digest, media_type, manifest))

    def image_deleted(self, name: str, reference: str, digest: str, media_type: str) -> None:
        self._publish(IMAGE_DELETED, _image(name, reference, digest, media_type))

    def image_lint_failed(
        self, name: str, reference: str, digest: str, media_type: str, manifest: bytes
    ) -> None:
        self._publish(IMAGE_LINT_FAILED, _image(name, reference, digest, media_type, manifest))

    def _publish(self, kind: str, data: dict[str, Any]) -> None:
        if not self.sinks:
            return
        from cloudevents.core.v1.event import CloudEvent

        cause = origin.get()
        if cause is not None:
            data |= cause.fields()
        event = CloudEvent(  # a new uuid4 `id` and the time now, by the library
            attributes={"type": kind, "source": SOURCE, "datacontenttype": "application/json"},
            data=dict(sorted(data.items())),  # zot's order (Go writes a map's keys sorted)
        )
        if self._lanes is None:
            self._lanes = [_Lane(sink) for sink in self.sinks]
        size = sys.getsizeof(data["manifest"]) if "manifest" in data else 0  # what it holds
        for lane in self._lanes:
            lane.put(event, size)

    async def close(self) -> None:
        """Send what is queued (for at most CLOSE_WAIT), then stop."""
        if self._lanes is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_WAIT):
                    await asyncio.gather(*(lane.queue.join() for lane in self._lanes))
            for lane in self._lanes:
                await lane.stop()
        for sink in self.sinks:
            await sink.close()


class _Lane:
    """One sink's queue and the task that sends it, in order: a sink that is slow or down
    delays and loses only its own events. Bounded by count and by the bytes of the
    manifests it holds (QUEUE_MAX, QUEUE_BYTES); past either, new events are dropped."""

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.queue: asyncio.Queue[tuple[CloudEvent, int]] = asyncio.Queue(QUEUE_MAX)
        self.bytes = 0
        self.dropped = 0
        # A context of its own: not the context (request id, origin) of the request whose
        # event came first.
        self.task = asyncio.create_task(
            self._send(), name="ocireg-events", context=contextvars.Context()
        )

    def put(self, event: CloudEvent, size: int) -> None:
        if self.bytes + size > QUEUE_BYTES or self.queue.full():
            self.dropped += 1
            if self.dropped in (1, 10) or self.dropped % 1000 == 0:
                log.warning(
                    "events dropped: the sink is behind",
                    extra={"sink": str(self.sink), "count": self.dropped},
                )
            return
        self.bytes += size
        self.queue.put_nowait((event, size))

    async def _send(self) -> None:
        while True:
            event, size = await self.queue.get()
            try:
                await self.sink.emit(event)
            except Exception as exc:
                log.warning(
                    "event not delivered",
                    extra={"type": event.get_type(), "sink": str(self.sink), "error": str(exc)},
                )
            finally:
                self.bytes -= size
                self.queue.task_done()

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


def _image(
    name: str, reference: str, digest: str, media_type: str, manifest: bytes | None = None
) -> dict[str, Any]:
    data = {"name": name, "reference": reference, "digest": digest, "mediaType": media_type}
    if manifest is not None:
        data["manifest"] = manifest.decode("utf-8", "replace")
    return data
