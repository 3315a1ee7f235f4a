"""Fixtures and helpers for the maintenance tests: a registry whose content the tests age and
collect (on the filesystem and on SeaweedFS + Redis), the real `ocireg gc` / `ocireg scrub`
commands, what is stored (files on disk or objects in the bucket), and scrapes of /metrics."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.conftest import backend_registry_config
from tests.support.backends import ACCESS_KEY, BUCKET, SECRET_KEY
from tests.support.oci import unique_repo
from tests.support.server import RegistryProcess, run_cli, running_registry

SHORT_DELAY = "1s"
UPLOADS = "/v2/{name:path}/blobs/uploads/"
BLOB = "/v2/{name:path}/blobs/{digest}"
MANIFEST = "/v2/{name:path}/manifests/{reference}"


BACKENDS = ["filesystem", "s3"]


@pytest.fixture(scope="module", params=BACKENDS)
def gc_registry(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryProcess]:
    """A registry with gcDelay 1s (and no background GC): the tests run `ocireg gc`."""
    workdir = tmp_path_factory.mktemp("gc")
    config = backend_registry_config(workdir, request.param, request)
    config["storage"]["gcDelay"] = SHORT_DELAY
    with running_registry(workdir, config) as proc:
        yield proc


@pytest.fixture
def stored(gc_registry: RegistryProcess) -> Stored:
    return stored_view(gc_registry)


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


def run_gc(
    config: Path,
    dry_run: bool = False,
    timeout: float = 120.0,
    repos: Iterable[str] = (),
) -> dict[str, dict[str, Any]]:
    """`ocireg gc CONFIG [--dry-run] [--repository NAME...]`: its JSON lines by repository.
    With `repos`, only those are collected (in that order), not every repository the
    module's registry holds by then."""
    args = ["gc", str(config)] + (["--dry-run"] if dry_run else [])
    args += [arg for repo in repos for arg in ("--repository", repo)]
    result = run_cli(*args, timeout=timeout)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return {r["repository"]: r for r in reports}


class Stored:
    """What a registry stored, read beside it: files under its root directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _blob(self, repo: str, digest: str) -> Path:
        alg, hexpart = digest.split(":")
        return self.root / repo / "blobs" / alg / hexpart

    def blob_files(self, repo: str) -> set[str]:
        """Digests of the blob files of `repo`."""
        base = self.root / repo / "blobs"
        if not base.exists():
            return set()
        return {f"{alg.name}:{f.name}" for alg in base.iterdir() for f in alg.iterdir()}

    def read(self, path: str) -> bytes:
        return (self.root / path).read_bytes()

    def read_blob(self, repo: str, digest: str) -> bytes:
        return self._blob(repo, digest).read_bytes()

    def write_blob(self, repo: str, digest: str, data: bytes) -> None:
        self._blob(repo, digest).write_bytes(data)

    def remove_blob(self, repo: str, digest: str) -> None:
        self._blob(repo, digest).unlink()

    def session_exists(self, repo: str, session: str) -> bool:
        return (self.root / repo / ".uploads" / session).exists()

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every file (except ocireg's private directory): size and mtime."""
        return {
            str(p.relative_to(self.root)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in self.root.rglob("*")
            if p.is_file() and ".ocireg" not in p.relative_to(self.root).parts
        }

    def multipart_uploads(self, repo: str) -> list[str]:
        return []  # a filesystem has none


class StoredInBucket(Stored):
    """The same, read from the registry's S3 bucket (keys under zot's doubled prefix)."""

    def __init__(self, driver: dict[str, Any]) -> None:
        import botocore.session

        root = driver["rootdirectory"].strip("/")
        self.prefix = f"{root}/{root}/"
        self.s3 = botocore.session.get_session().create_client(
            "s3",
            region_name="us-east-1",
            endpoint_url=driver["regionendpoint"],
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def _keys(self, under: str) -> dict[str, dict[str, Any]]:
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=self.prefix + under
        )
        return {
            o["Key"][len(self.prefix) :]: o
            for page in pages
            for o in page.get("Contents", [])
            if not o["Key"].endswith("/")  # SeaweedFS lists emptied folders as `dir/` keys
        }

    def blob_files(self, repo: str) -> set[str]:
        base = f"{repo}/blobs/"
        return {k[len(base) :].replace("/", ":") for k in self._keys(base)}

    def read(self, path: str) -> bytes:
        body: bytes = self.s3.get_object(Bucket=BUCKET, Key=self.prefix + path)["Body"].read()
        return body

    def read_blob(self, repo: str, digest: str) -> bytes:
        return self.read(f"{repo}/blobs/{digest.replace(':', '/')}")

    def write_blob(self, repo: str, digest: str, data: bytes) -> None:
        key = f"{self.prefix}{repo}/blobs/{digest.replace(':', '/')}"
        self.s3.put_object(Bucket=BUCKET, Key=key, Body=data)

    def remove_blob(self, repo: str, digest: str) -> None:
        key = f"{self.prefix}{repo}/blobs/{digest.replace(':', '/')}"
        self.s3.delete_object(Bucket=BUCKET, Key=key)

    def session_exists(self, repo: str, session: str) -> bool:
        # Addressed by key: SeaweedFS never lists `.uploads`.
        try:
            self.s3.head_object(Bucket=BUCKET, Key=f"{self.prefix}{repo}/.uploads/{session}")
        except self.s3.exceptions.ClientError:
            return False
        return True

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Every object: size and a hash of its ETag and LastModified."""
        return {
            k: (o["Size"], hash((o["ETag"], o["LastModified"]))) for k, o in self._keys("").items()
        }

    def abandon_multipart_upload(self, repo: str) -> str:
        """What a member killed at the wrong moment leaves: a multipart upload at a session's
        key, with one part, and no session state or register entry. Returns the session id."""
        session = str(uuid.uuid4())
        key = f"{self.prefix}{repo}/.uploads/{session}"
        upload = self.s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        self.s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload, PartNumber=1, Body=b"x")
        return session

    def multipart_uploads(self, repo: str) -> list[str]:
        """Keys of the multipart uploads S3 holds open under the repository."""
        pages = self.s3.get_paginator("list_multipart_uploads").paginate(
            Bucket=BUCKET, Prefix=f"{self.prefix}{repo}/"
        )
        return sorted(u["Key"][len(self.prefix) :] for p in pages for u in p.get("Uploads", []))


def stored_view(proc: RegistryProcess) -> Stored:
    driver = proc.config["storage"].get("storageDriver") or {}
    return StoredInBucket(driver) if driver.get("name") == "s3" else Stored(proc.root)


def scrape(url: str, path: str = "/metrics") -> list[Sample]:
    r = httpx.get(url + path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(r.text) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples called `name` whose labels include `labels`."""
    return sum(s.value for s in samples if s.name == name and labels.items() <= s.labels.items())
