"""Fixtures and helpers for the maintenance tests: a registry whose content the tests age and
collect, the real `ocireg gc` / `ocireg scrub` commands, the files on disk, and scrapes of
/metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.oci import unique_repo
from tests.support.server import RegistryProcess, base_config, run_cli, running_registry

SHORT_DELAY = "1s"
UPLOADS = "/v2/{name:path}/blobs/uploads/"
BLOB = "/v2/{name:path}/blobs/{digest}"
MANIFEST = "/v2/{name:path}/manifests/{reference}"


@pytest.fixture(scope="module")
def gc_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """A registry with gcDelay 1s (and no background GC): the tests run `ocireg gc`."""
    workdir = tmp_path_factory.mktemp("gc")
    config = base_config(workdir / "root")
    config["storage"]["gcDelay"] = SHORT_DELAY
    with running_registry(workdir, config) as proc:
        yield proc


@pytest.fixture
def gc_client(gc_registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gc_registry.url, timeout=30.0) as c:
        yield c


@pytest.fixture
def repo() -> str:
    return unique_repo("ops")


def config_variant(proc: RegistryProcess, name: str, **storage: Any) -> Path:
    """A config file for the same root with other storage settings (e.g. another gcDelay)."""
    config = json.loads(json.dumps(proc.config))
    config["storage"].update(storage)
    path = proc.workdir / f"{proc.name}-{name}.json"
    path.write_text(json.dumps(config))
    return path


def run_gc(config: Path, dry_run: bool = False) -> dict[str, dict[str, Any]]:
    """`ocireg gc CONFIG [--dry-run]`: its JSON lines by repository."""
    args = ["gc", str(config)] + (["--dry-run"] if dry_run else [])
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {r["repository"]: r for r in reports}


def blob_files(root: Path, repo: str) -> set[str]:
    """Digests of the blob files of `repo` on disk."""
    base = root / repo / "blobs"
    return {f"{alg.name}:{f.name}" for alg in base.iterdir() for f in alg.iterdir()}


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file under `root` (except ocireg's private directory): size and mtime."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in root.rglob("*")
        if p.is_file() and ".ocireg" not in p.relative_to(root).parts
    }


def scrape(url: str, path: str = "/metrics") -> list[Sample]:
    r = httpx.get(url + path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())
