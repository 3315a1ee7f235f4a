"""The Prometheus instruments of one worker process.

Imported only inside worker processes (by `ocireg.server.metrics.enable`): prometheus-client
decides at import time whether values live in per-process files, so the parent must have
set PROMETHEUS_MULTIPROC_DIR before this module is first imported anywhere.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
JOB_BUCKETS = (0.01, 0.1, 1, 10, 60, 300, 1800, 3600, 4 * 3600)


class Instruments:
    def __init__(self, multiprocess_dir: str | None) -> None:
        self.multiprocess_dir = multiprocess_dir
        # In multiprocess mode values go to files and a fresh collector reads them all; the
        # instruments themselves are registered nowhere.
        self.registry = None if multiprocess_dir else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ocireg_http_requests",
            "HTTP requests by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "ocireg_http_request_duration_seconds",
            "Time from request start to the last byte of the response",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.bytes_in = Counter(
            "ocireg_http_request_bytes",
            "Request body bytes received",
            ["method", "route"],
            registry=r,
        )
        self.bytes_out = Counter(
            "ocireg_http_response_bytes",
            "Response body bytes sent",
            ["method", "route"],
            registry=r,
        )
        # A redirected blob GET is a download the bucket serves for the registry: its bytes
        # never pass through ocireg_http_response_bytes, so they are counted here.
        self.blob_redirects = Counter(
            "ocireg_blob_redirects",
            "Blob GETs answered with a redirect to the storage (storage.redirectBlobURL)",
            registry=r,
        )
        self.blob_redirect_bytes = Counter(
            "ocireg_blob_redirect_bytes",
            "Bytes of the blobs whose GET was redirected to the storage",
            registry=r,
        )
        self.uploads = Gauge(
            "ocireg_uploads_in_progress",
            "Upload requests (POST, PATCH, PUT on an upload route) being received now",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.proxied = Counter(
            "ocireg_proxy_requests",
            "Requests forwarded to the owning cluster member",
            ["member"],
            registry=r,
        )
        self.proxy_errors = Counter(
            "ocireg_proxy_errors",
            "Forwarded requests that failed to reach the member or to complete",
            ["member"],
            registry=r,
        )
        self.members_up = Gauge(
            "ocireg_cluster_members_up",
            "Cluster members answering /livez, this one included",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.members_disagreeing = Gauge(
            "ocireg_cluster_members_disagreeing",
            "Cluster members whose member list or routing differs from this member's",
            registry=r,
            multiprocess_mode="mostrecent",
        )
        self.storage_requests = Counter(
            "ocireg_storage_requests",
            "Requests sent to the storage backend, by operation (S3: HeadObject, GetObject...)",
            ["operation"],
            registry=r,
        )
        self.failovers = Counter(
            "ocireg_cluster_failovers",
            "Requests for a down member's repositories answered by this member instead",
            ["member"],
            registry=r,
        )
        self.gc_runs = Counter(
            "ocireg_gc_runs", "Garbage collection runs by result", ["result"], registry=r
        )
        self.gc_removed = Counter(
            "ocireg_gc_removed", "Items removed by garbage collection", ["type"], registry=r
        )
        self.gc_removed_bytes = Counter(
            "ocireg_gc_removed_bytes", "Blob bytes removed by garbage collection", registry=r
        )
        self.gc_duration = Histogram(
            "ocireg_gc_duration_seconds",
            "Duration of garbage collection runs",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.scrub_runs = Counter(
            "ocireg_scrub_runs", "Scrub runs by result", ["result"], registry=r
        )
        self.scrub_blobs = Counter(
            "ocireg_scrub_blobs_checked", "Blobs re-hashed by scrub", registry=r
        )
        self.scrub_problems = Counter(
            "ocireg_scrub_problems", "Problems found by scrub, by kind", ["problem"], registry=r
        )
        self.scrub_duration = Histogram(
            "ocireg_scrub_duration_seconds",
            "Duration of scrub runs",
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.storage_bytes = Gauge(
            "ocireg_repository_storage_bytes",
            "Blob bytes stored per repository, as of the last GC or scrub",
            ["repository"],
            registry=r,
            multiprocess_mode="mostrecent",
        )

        self.sync_images = Counter(
            "ocireg_sync_images",
            "Images copied from an upstream registry, by mode (on_demand, periodic) and result",
            ["mode", "result"],
            registry=r,
        )
        self.sync_bytes = Counter(
            "ocireg_sync_bytes", "Blob bytes received from upstream registries", registry=r
        )
        self.sync_upstream_errors = Counter(
            "ocireg_sync_upstream_errors",
            "Failed requests to an upstream registry, by the entry's first URL",
            ["upstream"],
            registry=r,
        )
        self.sync_on_demand = Counter(
            "ocireg_sync_on_demand",
            "On-demand look-ups of mapped content: hit (served as stored), miss (fetched), "
            "stale (upstream unreachable, cached copy served)",
            ["result"],
            registry=r,
        )

    def render(self) -> bytes:
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def mark_process_dead(pid: int, directory: str) -> None:
    multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
