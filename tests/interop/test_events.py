"""The same `extensions.events` given to zot and to ocireg, the same pushes and deletes made:
both send the same events, with the same types, source, channel, headers and data (zot's
sink sends CloudEvents in HTTP binary mode; both are read back with the CloudEvents SDK)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.support.events import EventSink, push_sequence, summary
from tests.support.server import base_config
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


def test_zot_and_ocireg_send_the_same_events(tmp_path: Path) -> None:
    found = {}
    for kind in ("zot", "ocireg"):
        workdir = tmp_path / kind
        workdir.mkdir()
        with EventSink() as sink:
            http_sink = {
                "type": "http",
                "address": sink.url,
                "channel": "alerts",
                "headers": {"X-Team": "platform"},
                "credentials": {"username": "hook", "password": "secret"},
            }
            extensions = {"events": {"enable": True, "sinks": [http_sink]}}
            proc = zot_or_ocireg(
                kind, workdir, base_config(workdir / "root", extensions=extensions)
            )
            proc.start()
            try:
                with httpx.Client(base_url=proc.url, timeout=30.0) as c:
                    statuses = push_sequence(c, "team/app")
                events = sink.wait_for(6)
            finally:
                proc.stop()
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
