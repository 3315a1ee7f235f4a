"""`extensions.events` on a real server (two workers), its events taken by a real HTTP sink
and read back with the CloudEvents SDK: zot's types, source and data, in order, with the
sink's channel, credentials and headers; a push refused by lint sends its own event; a sink
that fails loses its events and nothing else."""

from __future__ import annotations

import datetime
import socket
from pathlib import Path
from typing import Any

import httpx

from tests.auth.conftest import write_htpasswd
from tests.support.backends import running_nats
from tests.support.events import EventSink, NatsListener, push_sequence, summary
from tests.support.lint import LINT
from tests.support.oci import push_blob, push_manifest, small_image
from tests.support.server import base_config, running_registry, wait_until

CREATED, UPDATED, DELETED, LINT_FAILED = (
    f"zotregistry.{kind}"
    for kind in ("repository.created", "image.updated", "image.deleted", "image.lint_failed")
)


def _events(*sinks: dict[str, Any], extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(extensions or {}), "events": {"enable": True, "sinks": list(sinks)}}


def test_pushes_and_deletes_send_zot_s_events_in_order(tmp_path: Path) -> None:
    with EventSink() as sink:
        http_sink = {
            "type": "http",
            "address": sink.url,
            "channel": "alerts",
            "timeout": "5s",
            "headers": {"X-Team": "platform"},
            "credentials": {"username": "hook", "password": "secret"},
        }
        config = base_config(tmp_path / "root", workers=2, extensions=_events(http_sink))
        with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
            statuses = push_sequence(c, "team/app")
            events = sink.wait_for(6)
        assert statuses == [201, 201, 201, 201, 202, 202]
    first, first_digest, _ = small_image("first")
    second, second_digest, _ = small_image("second")
    manifest = "application/vnd.oci.image.manifest.v1+json"
    request = {"addr": "127.0.0.1", "useragent": f"python-httpx/{httpx.__version__}"}

    def expected(
        kind: str, reference: str = "", digest: str = "", body: bytes = b""
    ) -> tuple[str, dict[str, Any]]:
        method = {CREATED: "POST", UPDATED: "PUT", DELETED: "DELETE"}[kind]
        data: dict[str, Any] = {"name": "team/app", "request": {**request, "method": method}}
        if reference:
            data |= {"reference": reference, "digest": digest, "mediaType": manifest}
        if body:
            data["manifest"] = body.decode()
        return kind, data

    assert summary(events) == [
        expected(CREATED),
        expected(UPDATED, "v1", first_digest, first),
        expected(UPDATED, "v2", first_digest, first),
        # v2 again on the same manifest changes nothing: no event
        expected(UPDATED, second_digest, second_digest, second),
        expected(DELETED, "v2", first_digest),
        expected(DELETED, first_digest, first_digest),
    ]
    assert len({e.id for e in events}) == len(events)
    for event in events:
        assert event.source == "zotregistry.dev" and event.channel == "alerts"
        assert event.headers["authorization"] == "Basic aG9vazpzZWNyZXQ="
        assert event.headers["x-team"] == "platform"
        assert event.headers["content-type"] == "application/json"
        sent = datetime.datetime.fromisoformat(event.time.replace("Z", "+00:00"))
        assert abs(sent - datetime.datetime.now(datetime.UTC)).total_seconds() < 120
        assert list(event.data) == sorted(event.data)  # zot's order


def test_lint_failure_and_the_user_are_in_the_events(tmp_path: Path) -> None:
    """With htpasswd the events name the user (`actor`); a push lint refuses sends
    image.lint_failed and nothing else."""
    htpasswd = write_htpasswd(tmp_path / "users.htpasswd", {"alice": "wonderland"})
    with EventSink() as sink:
        extensions = _events({"type": "http", "address": sink.url}, extensions=LINT)
        config = base_config(tmp_path / "root", extensions=extensions)
        config["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
        auth = ("alice", "wonderland")
        with (
            running_registry(tmp_path, config) as proc,
            httpx.Client(base_url=proc.url, auth=auth) as c,
        ):
            body, digest, blobs = small_image("unlabelled")
            for blob in blobs:
                push_blob(c, "team/app", blob)
            assert push_manifest(c, "team/app", "v1", body).status_code == 400
            events = sink.wait_for(2)
    assert [e.type for e in events] == [CREATED, LINT_FAILED]
    refused = events[1].data
    assert (refused["reference"], refused["digest"], refused["manifest"]) == (
        "v1",
        digest,
        body.decode(),
    )
    assert all(e.data["actor"] == {"name": "alice"} for e in events)


def test_a_failing_sink_loses_its_events_and_nothing_else(tmp_path: Path) -> None:
    """Sinks that answer 500, refuse connections, never answer (an HTTP server and a NATS
    address that take the connection and say nothing) or are not there: pushes are answered
    as usual, each of those loses its events after its timeout, and the sink that works gets
    every event without waiting for them."""
    with (
        EventSink(status=500) as failing,
        EventSink() as working,
        socket.create_server(("127.0.0.1", 0)) as silent,  # takes connections, answers none
    ):
        quiet = f"127.0.0.1:{silent.getsockname()[1]}"
        sinks = [
            {"type": "http", "address": failing.url},
            {"type": "http", "address": "http://127.0.0.1:9/nothing", "timeout": "2s"},
            {"type": "http", "address": f"http://{quiet}/events", "timeout": "2s"},
            {"type": "nats", "address": f"nats://{quiet}", "channel": "x", "timeout": "2s"},
            {"type": "nats", "address": "nats://127.0.0.1:9", "channel": "x", "timeout": "2s"},
            {"type": "http", "address": working.url},
        ]
        config = base_config(tmp_path / "root", extensions=_events(*sinks))
        with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
            assert push_sequence(c, "team/app") == [201, 201, 201, 201, 202, 202]
            # Bounded well below what one event's timeouts in the other sinks add up to.
            assert len(working.wait_for(6, timeout=10)) == 6
            assert len(failing.wait_for(6)) == 6  # tried, and lost
            lost = 5 * 6
            wait_until(lambda: proc.log_path.read_text().count("event not delivered") >= lost)


def test_a_nats_sink_gets_the_same_events_on_its_subject(tmp_path: Path) -> None:
    """A NATS sink (a real nats-server) beside an HTTP one: the same events, published on
    the sink's subject as one structured CloudEvent each (no headers), in the same order."""
    with (
        running_nats(tmp_path) as server,
        NatsListener(server.url, "registry.events") as listener,
        EventSink() as sink,
    ):
        sinks = [
            {"type": "nats", "address": server.url, "channel": "registry.events"},
            {"type": "http", "address": sink.url},
        ]
        config = base_config(tmp_path / "root", extensions=_events(*sinks))
        with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
            assert push_sequence(c, "team/app") == [201, 201, 201, 201, 202, 202]
            published, posted = listener.wait_for(6), sink.wait_for(6)
    assert summary(published) == summary(posted)
    assert [e.id for e in published] == [e.id for e in posted]
    for event in published:
        assert (event.path, event.headers, event.source) == (
            "registry.events",
            {},
            "zotregistry.dev",
        )
