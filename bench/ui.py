"""The repositories page with many repositories in the store (issue #16: under 200 ms with
10,000).

R repositories, each with one tagged image (manifest, config and layer blobs), are written
straight into a fresh root as OCI layouts (no HTTP, so the fill takes seconds), then
`ocireg rebuild-meta`; an ocireg with `extensions.ui` serves the pages. Measured: the median
time of the first page of `/` (50 repositories) and of pages at random places
(`?after=`), and of a filter that matches a few names (`?q=`); the list comes from the
search index in the metadata store (docs/search.md). Against ocireg alone: neither peer
has these pages.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.content import LAYOUT
from bench.core import Context, Row

TITLE = "11 web pages"
PAGES = 30


def run(ctx: Context) -> list[Row]:
    count = 1_000 if ctx.quick else 10_000
    return _repositories_page(ctx, count)


def _blob(root: Path, name: str, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = root / name / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def fill(root: Path, count: int) -> list[str]:
    """`count` repositories, each with one image tagged `latest`, written as OCI layouts."""
    names = [f"team{i % 100:02d}/app{i:06d}" for i in range(count)]
    layer = bytes(range(256)) * 64
    for i, name in enumerate(names):
        (root / name).mkdir(parents=True)
        (root / name / "oci-layout").write_bytes(LAYOUT)
        config = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    **_blob(root, name, config),
                },
                "layers": [
                    {
                        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        **_blob(root, name, layer),
                    }
                ],
            }
        ).encode()
        desc = {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **_blob(root, name, manifest),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }
        index = {"schemaVersion": 2, "manifests": [desc]}
        (root / name / "index.json").write_text(json.dumps(index))
    return names


def _repositories_page(ctx: Context, count: int) -> list[Row]:
    from tests.support.server import base_config, run_cli, running_registry

    with tempfile.TemporaryDirectory(prefix="ui-", dir=ctx.workdir) as tmp:
        work = Path(tmp)
        config = base_config(
            work / "root",
            workers=2,
            extensions={"search": {"enable": True}, "ui": {"enable": True}},
        )
        config["log"] = {"level": "warn"}
        names = fill(work / "root", count)
        (work / "config.json").write_text(json.dumps(config))
        rebuilt = run_cli("rebuild-meta", str(work / "config.json"), timeout=1800)
        assert rebuilt.returncode == 0, rebuilt.stderr[-2000:]
        with running_registry(work, config, name="ui") as registry:
            conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=600)

            def get(path: str) -> float:
                started = time.perf_counter()
                conn.request("GET", path)
                response = conn.getresponse()
                body = response.read()
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status == 200, (response.status, body[:200])
                assert b"<tbody>" in body or b'class="empty"' in body
                return elapsed

            get("/?n=1")  # templates compiled, the first catalog walk made (store.py)
            first = [get("/") for _ in range(PAGES)]
            rng = random.Random(16)
            cold = [get(f"/?after={rng.choice(names)}") for _ in range(PAGES)]
            filtered = [get(f"/?q=app{rng.randrange(count):06d}"[:-1]) for _ in range(PAGES)]
    label = f"{count:,} repositories"
    goal = "goal < 200 ms at 10,000"
    return [
        Row(
            TITLE,
            f"repositories page (first), {label}",
            "ms",
            ocireg=statistics.median(first),
            note=f"median of {PAGES}; 50 per page; {goal}",
        ),
        Row(
            TITLE,
            f"repositories page at random places, {label}",
            "ms",
            ocireg=statistics.median(cold),
            note=f"median of {PAGES}; 50 repositories a page; {goal}",
        ),
        Row(
            TITLE,
            f"repositories page filtered (?q=), {label}",
            "ms",
            ocireg=statistics.median(filtered),
            note=f"median of {PAGES}; a filter matching up to 10 names",
        ),
    ]
