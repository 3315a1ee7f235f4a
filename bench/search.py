"""Workload 12, search (docs/search.md): R repositories, each with one tagged, annotated
image, written straight into a fresh root as OCI layouts, `ocireg rebuild-meta` (which
builds the search index), then through `GET /v2/_ocireg/search`:

- the median time of a search (`?q=`, a word of the annotations or a name, at random;
  goal < 100 ms at 10,000 repositories);
- the median time of a page of repository summaries (`?n=50&last=`, at random places, and
  `?contains=` filtering as the UI does while one types; goal < 200 ms at 10,000);
- the cost of keeping the index on the write path: tag writes (8 clients, one repository)
  with search enabled against the same run with it off.

On local disk with the metadata in sqlite, then in a Redis started here. Runs against
ocireg alone (the peers have no search).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench.content import LAYOUT, WRITERS, Storage, write_tags
from bench.core import Context, Row

TITLE = "12 search"
SEARCH = "/v2/_ocireg/search"
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india")
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
LAYER = b"\x1f\x8b" + bytes(510)
SAMPLES = 50


def run(ctx: Context) -> list[Row]:
    from tests.support.backends import running_redis

    # quick: enough to run every step in well under a minute (make bench-smoke)
    count = 300 if ctx.quick else 10_000
    tags = 200 if ctx.quick else 2_000
    rows = _queries(ctx, count, SearchStorage())
    rows.append(_tag_cost(ctx, tags, SearchStorage(search=False), SearchStorage()))
    with (
        tempfile.TemporaryDirectory(prefix="redis-", dir=ctx.workdir) as tmp,
        running_redis(Path(tmp)) as redis,
    ):
        rows += _queries(ctx, count, SearchStorage(redis_url=redis.url))
        off = SearchStorage(redis_url=redis.url, search=False)
        rows.append(_tag_cost(ctx, tags, off, SearchStorage(redis_url=redis.url)))
    return rows


@dataclass
class SearchStorage(Storage):
    """A local root with search on (or off), its metadata in sqlite or in a Redis: the
    queries read only the metadata store, and filling a bucket over HTTP would take longer
    than the workload (workload 9 measures S3)."""

    search: bool = True

    def __post_init__(self) -> None:
        if self.redis_url:
            self.label = " + Redis"

    def config(self, root: Path) -> dict[str, Any]:
        config = super().config(root)
        if self.redis_url:
            prefix = uuid.uuid4().hex[:8]
            config["storage"]["remoteCache"] = True
            config["storage"]["cacheDriver"] = {
                "name": "redis",
                "url": self.redis_url,
                "keyprefix": prefix,
            }
        config["extensions"] = {"search": {"enable": self.search}}
        return config


def _digest(body: bytes) -> str:
    return f"sha256:{hashlib.sha256(body).hexdigest()}"


def _blob(body: bytes) -> str:
    return f"blobs/sha256/{hashlib.sha256(body).hexdigest()}"


def repository_files(i: int) -> dict[str, bytes]:
    """The i-th repository: one image tagged v1, its title, description and vendor words
    that a query finds in about one repository in nine."""
    word = WORDS[i % len(WORDS)]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": _digest(CONFIG),
                "size": len(CONFIG),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": _digest(LAYER),
                    "size": len(LAYER),
                }
            ],
            "annotations": {
                "org.opencontainers.image.title": f"App {i} {word}",
                "org.opencontainers.image.description": f"Service number {i}, {word} team",
                "org.opencontainers.image.vendor": f"vendor{i % 50:02d}",
            },
        }
    ).encode()
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": _digest(manifest),
                "size": len(manifest),
                "annotations": {"org.opencontainers.image.ref.name": "v1"},
            }
        ],
    }
    return {
        "oci-layout": LAYOUT,
        "index.json": json.dumps(index).encode(),
        _blob(manifest): manifest,
        _blob(CONFIG): CONFIG,
        _blob(LAYER): LAYER,
    }


def _queries(ctx: Context, count: int, storage: Storage) -> list[Row]:
    from bench.content import _measured_cli
    from tests.support.server import running_registry

    with tempfile.TemporaryDirectory(prefix="search-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        config = storage.config(work / "root")
        names = storage.fill(config, count, repository_files)
        (work / "config.json").write_text(json.dumps(config))
        rebuilt, _ = _measured_cli("rebuild-meta", str(work / "config.json"))
        with running_registry(work, config, name="search") as registry:
            conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=600)

            def timed(params: dict[str, Any]) -> tuple[float, dict[str, Any]]:
                started = time.perf_counter()
                conn.request("GET", f"{SEARCH}?{urlencode(params)}")
                response = conn.getresponse()
                data = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status == 200, (response.status, data[:200])
                return elapsed, json.loads(data)

            _, first = timed({"n": 1})
            assert len(first["repositories"]) == 1
            rng = random.Random(11)
            searches, pages, filtered = [], [], []
            for _ in range(SAMPLES):
                text = rng.choice([*WORDS, "vendor07", "app0002", "team3"])
                elapsed, body = timed({"q": text, "n": 50})
                assert body["repositories"] or body["images"], text
                searches.append(elapsed)
                elapsed, body = timed({"n": 50, "last": rng.choice(names)})
                pages.append(elapsed)
                elapsed, body = timed({"n": 50, "contains": f"app{rng.randrange(count):06d}"[:8]})
                assert body["repositories"]
                filtered.append(elapsed)
    label = f"{count:,} repositories, local disk{storage.label or ' + sqlite'}"
    note = f"median of {SAMPLES}; rebuild-meta (with search) took {rebuilt:.1f} s"
    return [
        Row(
            TITLE,
            f"search ?q= (50 results), {label}",
            "ms",
            ocireg=statistics.median(searches),
            note=f"{note}; goal < 100 ms",
        ),
        Row(
            TITLE,
            f"repository summaries, page of 50, {label}",
            "ms",
            ocireg=statistics.median(pages),
            note=f"{note}; goal < 200 ms",
        ),
        Row(
            TITLE,
            f"repository summaries, ?contains= page of 50, {label}",
            "ms",
            ocireg=statistics.median(filtered),
            note=f"{note}; goal < 200 ms",
        ),
    ]


def _tag_cost(ctx: Context, count: int, off: Storage, on: Storage) -> Row:
    """Tag writes with search on (ocireg column) and off (comparison column)."""
    import httpx

    from tests.support.oci import push_image
    from tests.support.server import running_registry

    rates: dict[str, float] = {}
    for name, storage in (("off", off), ("on", on)):
        with (
            tempfile.TemporaryDirectory(prefix="tags-", dir=ctx.workdir) as tmp,
            running_registry(Path(tmp), storage.config(Path(tmp) / "root")) as registry,
        ):
            repo = "bench/tags"
            annotations = {"org.opencontainers.image.title": "Tagged"}
            with httpx.Client(base_url=registry.url, timeout=60) as client:
                body = push_image(client, repo, "base", annotations=annotations).manifest
            started = time.perf_counter()
            done = write_tags(registry.port, repo, body, count)
            rates[name] = count / (max(done) - started)
    return Row(
        TITLE,
        f"tag writes, search on, local disk{on.label or ' + sqlite'}",
        "tags/s",
        ocireg=rates["on"],
        peer=rates["off"],
        vs="search off",
        note=f"{count:,} tags, {WRITERS} clients, one repository, 2 workers",
    )
