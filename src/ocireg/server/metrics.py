"""Prometheus metrics across Granian's worker processes (`extensions.metrics`, zot's keys).

The parent process gives every worker one fresh PROMETHEUS_MULTIPROC_DIR before they start
(`prepare_multiprocess_dir`); each worker writes its own value files there and a scrape of
`extensions.metrics.prometheus.path` (default /metrics), answered by any worker, sums them.
Requests are labelled by route template, never by raw path: repository names and digests
would make the number of series unbounded.

`record_proxied` is for the cluster proxy; `record_gc`, `record_scrub` and `record_run` for
maintenance runs; `record_sync` for the sync extension.
All of them do nothing when metrics are disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ocireg.api.responses import REDIRECTED_BYTES
from ocireg.config import Config
from ocireg.errors import RegistryError
from ocireg.server.traffic import Traffic
from ocireg.target import Endpoint, Target, target_of

if TYPE_CHECKING:
    from ocireg.ops.gc import GCReport
    from ocireg.ops.scrub import ScrubReport
    from ocireg.server.instruments import Instruments

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_UPLOAD_METHODS = frozenset({"POST", "PATCH", "PUT"})
_UPLOAD_ENDPOINTS = frozenset({Endpoint.UPLOAD_START, Endpoint.UPLOAD})


# --- process setup -------------------------------------------------------------------------


def prepare_multiprocess_dir(config: Config) -> Callable[[], None]:
    """In the parent, before workers start: point PROMETHEUS_MULTIPROC_DIR at an empty
    directory (the operator's, emptied, or a new temporary one). Returns the cleanup."""
    if not config.metrics.enabled:
        return lambda: None
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        directory = Path(given)
        directory.mkdir(parents=True, exist_ok=True)
        # Files of a previous run would add its counts to ours.
        for stale in directory.glob("*.db"):
            stale.unlink()
        return lambda: None
    created = tempfile.mkdtemp(prefix="ocireg-metrics-")
    os.environ[MULTIPROC_ENV] = created
    return lambda: shutil.rmtree(created, ignore_errors=True)


_instruments: Instruments | None = None


def enable() -> None:
    """In each worker process, when metrics are enabled: build this process's instruments."""
    global _instruments
    if _instruments is not None:
        return
    from ocireg.server.instruments import Instruments

    directory = os.environ.get(MULTIPROC_ENV) or None
    if directory:
        _forget_dead_workers(directory)
    _instruments = Instruments(directory)


def _forget_dead_workers(directory: str) -> None:
    """Drop the live-gauge files of workers that died (Granian respawned them): their
    uploads in progress are over. Their counters stay, as totals should."""
    from ocireg.server.instruments import mark_process_dead

    pids = set()
    for path in Path(directory).glob("*_*.db"):
        with contextlib.suppress(ValueError):
            pids.add(int(path.stem.rsplit("_", 1)[1]))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, someone else's


def record_proxied(member: str, failed: bool = False) -> None:
    """For the cluster proxy: one request forwarded to `member` (and whether it failed)."""
    m = _instruments
    if m is None:
        return
    m.proxied.labels(member).inc()
    if failed:
        m.proxy_errors.labels(member).inc()


def record_cluster_view(up: int, disagreeing: int) -> None:
    """For the cluster prober: members up (this one included), and members whose routing
    fingerprint differs from this member's, as this worker sees them."""
    m = _instruments
    if m is not None:
        m.members_up.set(up)
        m.members_disagreeing.set(disagreeing)


def record_failover(member: str) -> None:
    """For the cluster router: a request for `member`'s repository answered here because
    that member is down (shared storage only)."""
    m = _instruments
    if m is not None:
        m.failovers.labels(member).inc()


def record_storage_request(operation: str) -> None:
    """For the storage driver: one request sent to the backend (S3 operation name)."""
    m = _instruments
    if m is not None:
        m.storage_requests.labels(operation).inc()


def record_gc(report: GCReport) -> None:
    """For the maintenance run: one repository collected."""
    m = _instruments
    if m is None:
        return
    if not report.decided_only:  # retention's dryRun: index.json untouched, blobs collected
        m.gc_removed.labels("manifest").inc(len(report.manifests))
        m.gc_removed.labels("tag").inc(len(report.tags))
    m.gc_removed.labels("blob").inc(len(report.blobs))
    m.gc_removed.labels("upload").inc(len(report.uploads))
    m.gc_removed_bytes.inc(report.bytes_freed)
    if not report.dry_run:
        m.storage_bytes.labels(report.repository).set(report.bytes_kept)


def record_scrub(report: ScrubReport) -> None:
    """For the maintenance run: one repository scrubbed."""
    m = _instruments
    if m is None:
        return
    m.scrub_blobs.inc(report.blobs)
    for problem in report.problems:
        m.scrub_problems.labels(problem["problem"]).inc()
    m.storage_bytes.labels(report.repository).set(report.bytes)


def record_run(job: str, seconds: float, failed: bool) -> None:
    """For the maintenance run: a whole gc or scrub run ended."""
    m = _instruments
    if m is None:
        return
    runs, duration = (m.gc_runs, m.gc_duration) if job == "gc" else (m.scrub_runs, m.scrub_duration)
    runs.labels("error" if failed else "ok").inc()
    duration.observe(seconds)


def record_sync(kind: str, label: str = "", amount: float = 1) -> None:
    """For `ocireg.sync` (its `Recorder`): images, bytes, upstream errors, on-demand results."""
    m = _instruments
    if m is None:
        return
    if kind == "image":
        m.sync_images.labels(label, "ok").inc(amount)
    elif kind == "image_error":
        m.sync_images.labels(label, "error").inc(amount)
    elif kind == "bytes":
        m.sync_bytes.inc(amount)
    elif kind == "upstream_error":
        m.sync_upstream_errors.labels(label).inc(amount)
    elif kind == "on_demand":
        m.sync_on_demand.labels(label).inc(amount)


async def metrics_endpoint(request: Request) -> Response:
    """GET <extensions.metrics.prometheus.path>: the Prometheus text format, all workers."""
    m = _instruments
    body = await asyncio.to_thread(m.render) if m is not None else b""
    return Response(body, media_type=CONTENT_TYPE)


# --- the middleware ------------------------------------------------------------------------


class MetricsMiddleware:
    """Counts every request below it: method, route template, status, latency, bytes."""

    def __init__(self, app: ASGIApp, path: str) -> None:
        self.app = app
        self.path = path  # this module's own endpoint (`extensions.metrics.prometheus.path`)
        self._bound: dict[tuple[Any, ...], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        m = _instruments
        if scope["type"] != "http" or m is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        traffic = Traffic()

        async def counting_send(message: Message) -> None:
            traffic.sent(message)
            await send(message)

        upload = method in _UPLOAD_METHODS and target_of(scope).endpoint in _UPLOAD_ENDPOINTS
        if upload:
            m.uploads.inc()
        try:
            await self.app(scope, traffic.counting(receive), counting_send)
        except RegistryError as err:
            traffic.status = traffic.status or err.status
            raise
        except ClientDisconnect:
            traffic.status = traffic.status or 499
            raise
        except Exception:
            traffic.status = traffic.status or 500
            raise
        finally:
            if upload:
                m.uploads.dec()
            route = self._template(scope, target_of(scope))
            self._requests(m, method, route, traffic.status).inc()
            latency, bytes_in, bytes_out = self._per_route(m, method, route)
            latency.observe(time.perf_counter() - started)
            if traffic.bytes_in:
                bytes_in.inc(traffic.bytes_in)
            if traffic.bytes_out:
                bytes_out.inc(traffic.bytes_out)
            redirected = scope.get(REDIRECTED_BYTES)
            if redirected is not None:
                m.blob_redirects.inc()
                m.blob_redirect_bytes.inc(redirected)

    # `labels()` costs as much as the update itself; the label sets are few, keep them bound.

    def _requests(self, m: Instruments, method: str, route: str, status: int) -> Any:
        key = (method, route, status)
        child = self._bound.get(key)
        if child is None:
            child = self._bound[key] = m.requests.labels(method, route, str(status))
        return child

    def _per_route(self, m: Instruments, method: str, route: str) -> Any:
        key = (method, route)
        children = self._bound.get(key)
        if children is None:
            children = self._bound[key] = (
                m.latency.labels(method, route),
                m.bytes_in.labels(method, route),
                m.bytes_out.labels(method, route),
            )
        return children

    def _template(self, scope: Scope, aim: Target) -> str:
        if aim.endpoint is not Endpoint.OTHER:
            return aim.endpoint.template
        # Outside the API only this module's own route has a label of its own.
        return self.path if scope["path"] == self.path else "unmatched"
