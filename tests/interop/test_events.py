"""The same `extensions.events` given to zot and to ocireg, the same pushes and deletes made:
both send the same events, with the same types, source, channel, headers and data (zot's
sink sends CloudEvents in HTTP binary mode; both are read back with the CloudEvents SDK)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.backends import running_nats
from tests.support.events import EventSink, NatsListener, Received, push_sequence, summary
from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


def _run(
    kind: str, workdir: Path, sink: dict[str, Any], taken: EventSink | NatsListener
) -> tuple[list[int], list[Received]]:
    """`push_sequence` on zot or ocireg with this one sink; the answers, and the six events
    `taken` received."""
    workdir.mkdir()
    extensions = {"events": {"enable": True, "sinks": [sink]}}
    proc = zot_or_ocireg(kind, workdir, base_config(workdir / "root", extensions=extensions))
    proc.start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30.0) as c:
            statuses = push_sequence(c, "team/app")
        return statuses, taken.wait_for(6)
    finally:
        proc.stop()


def test_zot_and_ocireg_send_the_same_events(tmp_path: Path) -> None:
    found = {}
    for kind in ("zot", "ocireg"):
        with EventSink() as sink:
            http_sink = {
                "type": "http",
                "address": sink.url,
                "channel": "alerts",
                "headers": {"X-Team": "platform"},
                "credentials": {"username": "hook", "password": "secret"},
            }
            statuses, events = _run(kind, tmp_path / kind, http_sink, sink)
        headers = [
            {k: e.headers.get(k) for k in ("authorization", "x-team", "content-type")}
            for e in events
        ]
        sources = {(e.source, e.channel) for e in events}
        # zot sends each event from a goroutine of its own: compared in any order (ocireg's
        # order is checked in tests/process/test_events.py)
        found[kind] = (statuses, sorted(map(repr, summary(events))), headers, sources)
    assert found["ocireg"] == found["zot"]
    assert found["zot"][3] == {("zotregistry.dev", "alerts")}


def test_zot_and_ocireg_publish_the_same_events_on_nats(tmp_path: Path) -> None:
    """The same with a NATS sink (Debian's nats-server): both publish each event on the
    sink's subject as one structured CloudEvent, without headers."""
    found = {}
    with running_nats(tmp_path) as server:
        for kind in ("zot", "ocireg"):
            subject = f"events.{kind}"
            with NatsListener(server.url, subject) as listener:
                nats_sink = {"type": "nats", "address": server.url, "channel": subject}
                statuses, events = _run(kind, tmp_path / kind, nats_sink, listener)
            shape = {(e.path == subject, bool(e.headers), e.source, e.channel) for e in events}
            found[kind] = (statuses, sorted(map(repr, summary(events))), shape)
    assert found["ocireg"] == found["zot"]
    assert found["zot"][2] == {(True, False, "zotregistry.dev", None)}
