"""skopeo (containers/image) pushes, pulls, inspects and deletes images on ocireg."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import httpx
import pytest

from tests.clients.conftest import Tools, require
from tests.clients.layout import (
    OCI_INDEX,
    OCI_MANIFEST,
    build_image_layout,
    build_index_layout,
    read_tagged,
)
from tests.support.server import RegistryProcess

pytestmark = pytest.mark.clients


def skopeo(tools: Tools, *args: str) -> str:
    """Run skopeo with our private signature policy; returns stdout."""
    return tools.run([require("skopeo"), "--policy", str(tools.policy), *args]).stdout


def host(registry: RegistryProcess) -> str:
    return f"127.0.0.1:{registry.port}"


def manifest_digest(registry: RegistryProcess, repo: str, ref: str, accept: str) -> str:
    r = httpx.head(
        f"{registry.url}/v2/{repo}/manifests/{ref}", headers={"Accept": accept}, timeout=30
    )
    assert r.status_code == 200, r.text
    return r.headers["Docker-Content-Digest"]


def blob_bytes(layout: Path, digest: str) -> bytes:
    alg, hexpart = digest.split(":", 1)
    return (layout / "blobs" / alg / hexpart).read_bytes()


def assert_manifest_unknown(r: httpx.Response) -> None:
    assert r.status_code == 404, r.text
    body = r.json()
    assert isinstance(body["errors"], list) and body["errors"]
    assert body["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert isinstance(body["errors"][0]["message"], str)


def push_image(tools: Tools, registry: RegistryProcess, tmp_path: Path, repo: str) -> str:
    src = tmp_path / f"src-{repo.replace('/', '_')}"
    manifest = build_image_layout(src, "v1", seed=zlib.crc32(repo.encode()))
    skopeo(
        tools,
        "copy",
        "--dest-tls-verify=false",
        f"oci:{src}:v1",
        f"docker://{host(registry)}/{repo}:v1",
    )
    return manifest.digest


def test_copy_up_and_back_keeps_manifest_digest(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    manifest = build_image_layout(src, "v1", seed=1)
    ref = f"docker://{host(clients_registry)}/skopeo/roundtrip:v1"
    digestfile = tmp_path / "pushed.digest"

    skopeo(
        tools,
        "copy",
        "--dest-tls-verify=false",
        "--digestfile",
        str(digestfile),
        f"oci:{src}:v1",
        ref,
    )
    assert digestfile.read_text().strip() == manifest.digest
    assert (
        manifest_digest(clients_registry, "skopeo/roundtrip", "v1", OCI_MANIFEST) == manifest.digest
    )

    skopeo(tools, "copy", "--src-tls-verify=false", ref, f"oci:{dst}:v1")
    pulled = read_tagged(dst, "v1")
    assert pulled["digest"] == manifest.digest
    assert pulled["mediaType"] == OCI_MANIFEST
    # Every blob came back byte for byte: config and both layers.
    doc = json.loads(blob_bytes(src, manifest.digest))
    for desc in [doc["config"], *doc["layers"]]:
        assert blob_bytes(dst, desc["digest"]) == blob_bytes(src, desc["digest"])


def test_inspect_over_http_matches_pushed_image(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    manifest = build_image_layout(src, "v1", seed=2)
    ref = f"docker://{host(clients_registry)}/skopeo/inspect:v1"
    skopeo(tools, "copy", "--dest-tls-verify=false", f"oci:{src}:v1", ref)

    info = json.loads(skopeo(tools, "inspect", "--tls-verify=false", ref))
    doc = json.loads(blob_bytes(src, manifest.digest))
    assert info["Digest"] == manifest.digest
    assert info["Layers"] == [layer["digest"] for layer in doc["layers"]]
    assert info["Architecture"] == "amd64"
    assert "v1" in info["RepoTags"]
    # The manifest is served back byte for byte.
    raw = tools.run(
        [
            require("skopeo"),
            "--policy",
            str(tools.policy),
            "inspect",
            "--raw",
            "--tls-verify=false",
            ref,
        ]
    ).stdout
    assert raw.encode() == blob_bytes(src, manifest.digest)


def test_inspect_reads_registry_storage_as_oci_layout(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    repo = "skopeo/direct"
    src = tmp_path / "src"
    manifest = build_image_layout(src, "v1", seed=3)
    skopeo(
        tools,
        "copy",
        "--dest-tls-verify=false",
        f"oci:{src}:v1",
        f"docker://{host(clients_registry)}/{repo}:v1",
    )

    # skopeo reads our storage directory itself, without HTTP: it is a plain OCI layout.
    on_disk = f"oci:{clients_registry.root / repo}:v1"
    info = json.loads(skopeo(tools, "inspect", on_disk))
    assert info["Digest"] == manifest.digest
    config = json.loads(skopeo(tools, "inspect", "--config", on_disk))
    doc = json.loads(blob_bytes(src, manifest.digest))
    assert config == json.loads(blob_bytes(src, doc["config"]["digest"]))
    # Copying out of the storage reads every blob, so they are all complete and named right.
    out = tmp_path / "out"
    skopeo(tools, "copy", on_disk, f"oci:{out}:v1")
    assert read_tagged(out, "v1")["digest"] == manifest.digest


def test_copy_all_multiarch_index(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    index = build_index_layout(src, "multi", seed=4, arches=("amd64", "arm64"))
    ref = f"docker://{host(clients_registry)}/skopeo/multi:multi"

    skopeo(tools, "copy", "--all", "--dest-tls-verify=false", f"oci:{src}:multi", ref)
    assert manifest_digest(clients_registry, "skopeo/multi", "multi", OCI_INDEX) == index.digest
    children = json.loads(blob_bytes(src, index.digest))["manifests"]
    for child in children:
        got = manifest_digest(clients_registry, "skopeo/multi", child["digest"], OCI_MANIFEST)
        assert got == child["digest"]

    skopeo(tools, "copy", "--all", "--src-tls-verify=false", ref, f"oci:{dst}:multi")
    assert read_tagged(dst, "multi")["digest"] == index.digest
    for child in children:
        assert blob_bytes(dst, child["digest"]) == blob_bytes(src, child["digest"])

    # Asking for one platform resolves through the index to that child's config
    # (skopeo reports the digest of the index it fetched first).
    for arch in ("amd64", "arm64"):
        info = json.loads(
            skopeo(tools, "--override-arch", arch, "inspect", "--tls-verify=false", ref)
        )
        assert info["Digest"] == index.digest
        assert info["Architecture"] == arch


def test_copy_between_repositories(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    """A registry-to-registry copy tries cross-repository mounts for the layers."""
    digest = push_image(tools, clients_registry, tmp_path, "skopeo/mount-from")
    h = host(clients_registry)
    skopeo(
        tools,
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        f"docker://{h}/skopeo/mount-from:v1",
        f"docker://{h}/skopeo/mount-to:v1",
    )
    assert manifest_digest(clients_registry, "skopeo/mount-to", "v1", OCI_MANIFEST) == digest
    info = json.loads(
        skopeo(tools, "inspect", f"oci:{clients_registry.root / 'skopeo/mount-to'}:v1")
    )
    assert info["Digest"] == digest


def test_delete_removes_manifest_and_tag(
    tools: Tools, clients_registry: RegistryProcess, tmp_path: Path
) -> None:
    repo = "skopeo/delete"
    digest = push_image(tools, clients_registry, tmp_path, repo)
    ref = f"docker://{host(clients_registry)}/{repo}:v1"

    skopeo(tools, "delete", "--tls-verify=false", ref)

    with httpx.Client(base_url=clients_registry.url, timeout=30) as c:
        accept = {"Accept": OCI_MANIFEST}
        assert_manifest_unknown(c.get(f"/v2/{repo}/manifests/{digest}", headers=accept))
        assert_manifest_unknown(c.get(f"/v2/{repo}/manifests/v1", headers=accept))
        tags = c.get(f"/v2/{repo}/tags/list")
        # Either the repository still lists no tags, or it is gone entirely.
        if tags.status_code == 200:
            assert "v1" not in (tags.json().get("tags") or [])
        else:
            assert tags.status_code == 404
            assert tags.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    failed = tools.run(
        [require("skopeo"), "--policy", str(tools.policy), "inspect", "--tls-verify=false", ref],
        check=False,
    )
    assert failed.returncode != 0
