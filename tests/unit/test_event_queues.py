"""Each event sink's queue is bounded by the bytes of the manifests it holds, not only by
count: a sink that never answers (a real socket that takes connections and says nothing)
holds at most QUEUE_BYTES of manifest text in a worker; past that, new events are dropped
for that sink alone, and a sink that answers gets them all."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from ocireg import events, logs
from ocireg.events.sinks import HttpSink
from ocireg.settings.events import SinkSettings
from tests.support.events import EventSink

MANIFEST = b"{" + b" " * (5 << 20) + b"}"  # 5 MiB


def test_a_silent_sink_holds_bounded_bytes_and_drops_the_rest(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent, EventSink() as working:
        stalled = f"http://127.0.0.1:{silent.getsockname()[1]}/events"

        async def run() -> tuple[int, int, int]:
            sinks = [
                HttpSink(SinkSettings("http", stalled, timeout=30)),
                HttpSink(SinkSettings("http", working.url)),
            ]
            recorder = events.Recorder(sinks)
            for n in range(20):  # one push after the other, the answering sink keeping up
                recorder.image_updated("team/app", f"t{n}", "sha256:" + "a" * 64, "m", MANIFEST)
                quiet, answering = recorder._lanes or []
                await asyncio.wait_for(answering.queue.join(), 60)
            held = quiet.bytes
            await recorder.close()
            return held, quiet.dropped, answering.dropped

        held, dropped, dropped_by_working = asyncio.run(run())
        assert held <= events.QUEUE_BYTES and dropped == 20 - events.QUEUE_BYTES // len(MANIFEST)
        assert dropped_by_working == 0 and len(working.received()) == 20


class _Refusing:
    """A sink that refuses every event, saying which request id its task runs under."""

    async def emit(self, event: object) -> None:
        raise RuntimeError(logs.request_id.get())

    async def close(self) -> None:
        return None


def test_a_sink_s_task_does_not_run_in_the_first_event_s_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The task that sends a sink's events is made by the first event, inside a request: it
    must not keep that request's context (its id in every later log line of the sink)."""

    async def run() -> None:
        recorder = events.Recorder([_Refusing()])
        token = logs.request_id.set("first-request")
        recorder.repository_created("a")
        logs.request_id.reset(token)
        (lane,) = recorder._lanes or []
        await lane.queue.join()
        await recorder.close()

    with caplog.at_level(logging.WARNING, logger="ocireg.events"):
        asyncio.run(run())
    assert [getattr(r, "error", None) for r in caplog.records] == ["-"]
