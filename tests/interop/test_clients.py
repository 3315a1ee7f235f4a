"""crane and regctl against ocireg: a single instance, and member 0 of a three-member cluster
on one root with repositories that another member owns (so every request is forwarded).

Each test checks what the client did through the plain API as well, not only its exit code.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.interop.conftest import Client
from tests.support.cluster import repo_owned_by, running_cluster
from tests.support.oci import OCI_MANIFEST, manifest_path, unique_repo
from tests.support.server import running_registry

pytestmark = pytest.mark.slow


@dataclass
class Target:
    """Where the clients push: `host` for their references, `repo(n)` a fresh repository."""

    url: str
    cluster: bool
    made: int = 0

    @property
    def host(self) -> str:
        return self.url.removeprefix("http://")

    def repo(self, prefix: str) -> str:
        if not self.cluster:
            return unique_repo(prefix)
        # Owned by member 1 and 2 in turn, never by member 0 that the clients talk to.
        self.made += 1
        return repo_owned_by(1 + self.made % 2, 3, prefix)

    def ref(self, repo: str, tag: str = "") -> str:
        return f"{self.host}/{repo}{':' + tag if tag else ''}"


@pytest.fixture(scope="module", params=["single", "cluster"])
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    workdir = tmp_path_factory.mktemp(f"clients-{request.param}")
    if request.param == "single":
        with running_registry(workdir, workers=1) as proc:
            yield Target(proc.url, cluster=False)
    else:
        with running_cluster(workdir, count=3, workers=1) as members:
            yield Target(members[0].url, cluster=True)


@pytest.fixture
def api(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.url, timeout=30.0) as client:
        yield client


def layer_tar(workdir: Path, name: str, content: bytes) -> Path:
    """A tarball of one file, for `crane append`."""
    src = workdir / name
    src.write_bytes(content)
    out = workdir / f"{name}.tar"
    with tarfile.open(out, "w") as tar:
        tar.add(src, arcname=name)
    return out


def push_base(crane: Client, target: Target, tmp_path: Path, repo: str, tag: str) -> str:
    """`crane append` onto an empty base: a fresh one-layer OCI image; returns its digest."""
    tar = layer_tar(tmp_path, "hello.txt", f"hello {repo}\n".encode())
    out = crane("append", "--oci-empty-base", "-f", str(tar), "-t", target.ref(repo, tag))
    return out.stdout.strip().rsplit("@", 1)[1]


def manifest_of(api: httpx.Client, repo: str, ref: str) -> httpx.Response:
    accept = f"{OCI_MANIFEST}, application/vnd.oci.image.index.v1+json"
    return api.get(manifest_path(repo, ref), headers={"Accept": accept})


# --- crane ---------------------------------------------------------------------------------


def test_crane_append_copy_mutate_validate_delete_catalog(
    crane: Client, target: Target, api: httpx.Client, tmp_path: Path
) -> None:
    base, copy = target.repo("crane-base"), target.repo("crane-copy")
    digest = push_base(crane, target, tmp_path, base, "v1")
    r = manifest_of(api, base, "v1")
    assert r.status_code == 200 and r.headers["docker-content-digest"] == digest

    crane("copy", target.ref(base, "v1"), target.ref(copy, "v1"))
    assert manifest_of(api, copy, "v1").content == r.content

    tar = layer_tar(tmp_path, "more.txt", b"more\n")
    appended = crane(
        "append", "-b", target.ref(copy, "v1"), "-f", str(tar), "-t", target.ref(copy, "v2")
    )
    appended_digest = appended.stdout.strip().rsplit("@", 1)[1]
    assert len(json.loads(manifest_of(api, copy, "v2").content)["layers"]) == 2

    mutated = crane(
        "mutate", target.ref(copy, "v2"), "--label", "org.x=1", "-t", target.ref(copy, "v3")
    )
    mutated_digest = mutated.stdout.strip().rsplit("@", 1)[1]
    assert mutated_digest != appended_digest
    config = json.loads(crane("config", target.ref(copy, "v3")).stdout)
    assert config["config"]["Labels"] == {"org.x": "1"}

    for tag in ("v1", "v2", "v3"):
        assert "PASS" in crane("validate", "--remote", target.ref(copy, tag)).stdout

    assert {base, copy} <= set(crane("catalog", target.host).stdout.split())
    assert sorted(crane("ls", target.ref(copy)).stdout.split()) == ["v1", "v2", "v3"]

    crane("delete", f"{target.host}/{copy}@{mutated_digest}")
    assert manifest_of(api, copy, "v3").status_code == 404
    assert manifest_of(api, copy, mutated_digest).status_code == 404
    assert sorted(crane("ls", target.ref(copy)).stdout.split()) == ["v1", "v2"]


# --- regctl --------------------------------------------------------------------------------


@pytest.fixture
def reg(regctl: Client, target: Target) -> Client:
    regctl("registry", "set", "--tls", "disabled", target.host)
    return regctl


def test_regctl_copy_export_import_artifacts_tag_delete_blob_head(
    crane: Client, reg: Client, target: Target, api: httpx.Client, tmp_path: Path
) -> None:
    src, dst, imported = (
        target.repo("regctl-src"),
        target.repo("regctl-dst"),
        target.repo("regctl-imp"),
    )
    digest = push_base(crane, target, tmp_path, src, "v1")

    reg("image", "copy", target.ref(src, "v1"), target.ref(dst, "v1"))
    assert manifest_of(api, dst, "v1").headers["docker-content-digest"] == digest

    archive = tmp_path / "image.tar"
    reg("image", "export", target.ref(dst, "v1"), str(archive))
    reg("image", "import", target.ref(imported, "v1"), str(archive))
    assert manifest_of(api, imported, "v1").headers["docker-content-digest"] == digest

    sbom = "application/vnd.example.sbom.v1"
    reg(
        "artifact",
        "put",
        "--subject",
        target.ref(dst, "v1"),
        "--artifact-type",
        sbom,
        "--file-media-type",
        "application/json",
        f"{target.host}/{dst}",
        stdin='{"sbom": true}\n',
    )
    listed = json.loads(
        reg("artifact", "list", target.ref(dst, "v1"), "--format", "{{json .}}").stdout
    )
    assert [d["artifactType"] for d in listed["descriptors"]] == [sbom]
    r = api.get(f"/v2/{dst}/referrers/{digest}")
    assert [m["digest"] for m in r.json()["manifests"]] == [listed["descriptors"][0]["digest"]]

    reg("tag", "delete", target.ref(imported, "v1"))
    assert manifest_of(api, imported, "v1").status_code == 404
    assert manifest_of(api, imported, digest).status_code == 200  # the manifest stays

    layer = json.loads(manifest_of(api, dst, "v1").content)["layers"][0]
    head = reg("blob", "head", f"{target.host}/{dst}", layer["digest"]).stdout.lower()
    assert f"content-length: {layer['size']}" in head
    assert f"docker-content-digest: {layer['digest']}" in head
    missing = reg("blob", "head", f"{target.host}/{dst}", "sha256:" + "0" * 64, check=False)
    assert missing.returncode != 0
