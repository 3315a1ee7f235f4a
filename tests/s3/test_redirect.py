"""zot's `storage.redirectBlobURL` on S3: a whole-blob GET answers 307 with a presigned URL
of the object in SeaweedFS; HEAD, ranged GETs and errors are answered by the registry, and
a redirect never points at a blob the repository does not have."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import backend_config, use_backend
from tests.support.backends import Redis, SeaweedFS
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import (
    absent_digest,
    assert_error,
    push_blob,
    push_image,
    random_bytes,
    sha256_digest,
    unique_repo,
)
from tests.support.server import RegistryProcess, base_config, running_registry


def redirecting_config(
    workdir: Path, seaweedfs: SeaweedFS, redis: Redis, rootdirectory: str, redirect: bool
) -> dict[str, object]:
    cfg = backend_config(workdir, seaweedfs, redis, rootdirectory, uuid.uuid4().hex[:8])
    cfg["storage"]["redirectBlobURL"] = redirect
    cfg["extensions"] = {"metrics": {"enable": True, "prometheus": {"path": "/metrics"}}}
    return cfg


@pytest.fixture(scope="module")
def rootdirectory() -> str:
    return f"/redir{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def redirecting(
    tmp_path_factory: pytest.TempPathFactory,
    seaweedfs: SeaweedFS,
    redis_server: Redis,
    rootdirectory: str,
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp("redirect-on")
    cfg = redirecting_config(workdir, seaweedfs, redis_server, rootdirectory, True)
    with running_registry(workdir, cfg, name="redirect-on") as proc:
        yield proc


@pytest.fixture
def client(redirecting: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=redirecting.url, timeout=60.0) as c:
        yield c


def counter(client: httpx.Client, name: str) -> float:
    """A counter's value summed over the workers (0 before its first increment)."""
    text = client.get("/metrics").text
    match = re.search(rf"^{name}_total (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_end2_get_redirects_to_the_object_and_the_url_serves_exactly_the_blob(
    client: httpx.Client, seaweedfs: SeaweedFS
) -> None:
    repo = unique_repo("redirect")
    data = random_bytes(3 * 1024 * 1024 + 17)
    digest = push_blob(client, repo, data)
    redirects, redirected = (
        counter(client, "ocireg_blob_redirects"),
        counter(client, "ocireg_blob_redirect_bytes"),
    )

    r = client.get(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 307, r.text
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.content == b""
    location = r.headers["Location"]
    assert location.startswith(seaweedfs.endpoint + "/"), location
    assert "X-Amz-Signature=" in location and "X-Amz-Expires=1200" in location

    fetched = httpx.get(location, timeout=60)  # no credentials: the URL carries them
    assert fetched.status_code == 200
    assert fetched.content == data
    assert sha256_digest(fetched.content) == digest
    # Counted as a download the registry handed to the bucket, by either worker.
    assert counter(client, "ocireg_blob_redirects") == redirects + 1
    assert counter(client, "ocireg_blob_redirect_bytes") == redirected + len(data)


def test_end2_small_config_blob_redirects_too(client: httpx.Client) -> None:
    image = push_image(client, unique_repo("redirect"), "v1")
    config_digest = sha256_digest(image.config)
    r = client.get(f"/v2/{image.repo}/blobs/{config_digest}")
    assert r.status_code == 307
    assert httpx.get(r.headers["Location"], timeout=30).content == image.config
    # Manifests are never redirected: they are not blobs for the client.
    m = client.get(f"/v2/{image.repo}/manifests/v1", headers={"Accept": image.media_type})
    assert m.status_code == 200 and m.content == image.manifest


def test_end2_head_is_answered_here_without_redirect(client: httpx.Client) -> None:
    repo = unique_repo("redirect")
    data = random_bytes(200_000)
    digest = push_blob(client, repo, data)
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    assert r.status_code == 200
    assert "location" not in r.headers
    assert r.headers["Docker-Content-Digest"] == digest
    assert int(r.headers["Content-Length"]) == len(data)


def test_end2_ranged_get_is_answered_here(client: httpx.Client) -> None:
    repo = unique_repo("redirect")
    data = random_bytes(200_000)
    digest = push_blob(client, repo, data)
    r = client.get(f"/v2/{repo}/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert r.status_code == 206
    assert "location" not in r.headers
    assert r.content == data[100:200]


def test_end2_unknown_blob_is_404_without_redirect(client: httpx.Client) -> None:
    repo = unique_repo("redirect")
    push_blob(client, repo, random_bytes(100))
    r = client.get(f"/v2/{repo}/blobs/{absent_digest()}")
    assert_error(r, 404, "BLOB_UNKNOWN")
    assert "location" not in r.headers


def test_end2_blob_of_another_repository_is_404_without_redirect(client: httpx.Client) -> None:
    owner, other = unique_repo("redirect"), unique_repo("redirect")
    digest = push_blob(client, owner, random_bytes(5000))
    push_blob(client, other, random_bytes(100))  # the other repository exists
    r = client.get(f"/v2/{other}/blobs/{digest}")
    assert_error(r, 404, "BLOB_UNKNOWN")
    assert "location" not in r.headers
    # Once mounted, the other repository has it, and redirects to its own copy.
    mounted = client.post(f"/v2/{other}/blobs/uploads/", params={"mount": digest, "from": owner})
    assert mounted.status_code == 201
    r = client.get(f"/v2/{other}/blobs/{digest}")
    assert r.status_code == 307
    assert f"/{other}/blobs/sha256/" in urlsplit(r.headers["Location"]).path


def test_without_redirect_blob_url_the_same_bucket_is_served_as_before(
    tmp_path: Path,
    client: httpx.Client,
    seaweedfs: SeaweedFS,
    redis_server: Redis,
    rootdirectory: str,
) -> None:
    repo = unique_repo("redirect")
    data = random_bytes(300_000)
    digest = push_blob(client, repo, data)
    cfg = redirecting_config(tmp_path, seaweedfs, redis_server, rootdirectory, False)
    with running_registry(tmp_path, cfg, name="redirect-off") as plain:
        r = httpx.get(f"{plain.url}/v2/{repo}/blobs/{digest}", timeout=60)
        assert r.status_code == 200
        assert "location" not in r.headers
        assert r.content == data
        with httpx.Client(base_url=plain.url) as c:
            assert counter(c, "ocireg_blob_redirects") == 0


def test_filesystem_driver_ignores_redirect_blob_url(tmp_path: Path) -> None:
    cfg = base_config(tmp_path / "root")
    cfg["storage"]["redirectBlobURL"] = True
    with (
        running_registry(tmp_path, cfg, name="fs-redirect") as proc,
        httpx.Client(base_url=proc.url, timeout=30) as c,
    ):
        repo = unique_repo("redirect")
        data = random_bytes(100_000)
        digest = push_blob(c, repo, data)
        r = c.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 200
        assert r.content == data


def test_a_forwarded_blob_get_passes_the_owners_redirect_on(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """Separate storage (zot's model): member 0 forwards the GET to the owner, whose 307
    reaches the client as it is (the proxy does not follow redirects)."""
    configs = cluster_configs(tmp_path, count=2, workers=1)
    for i, cfg in enumerate(configs):
        cfg["storage"]["rootDirectory"] = str(tmp_path / f"local-{i}")
        use_backend(cfg, seaweedfs, redis_server, f"/sep{uuid.uuid4().hex[:8]}", f"m{i}")
        cfg["storage"]["redirectBlobURL"] = True
        cfg["cluster"]["sharedStorage"] = False
    repo = repo_owned_by(1, count=2, prefix="redirect")
    data = random_bytes(100_000)
    with (
        running_members(tmp_path, configs) as members,
        httpx.Client(base_url=members[0].url, timeout=60) as c,
    ):
        digest = push_blob(c, repo, data)
        r = c.get(f"/v2/{repo}/blobs/{digest}")
        assert r.status_code == 307
        owner_root = configs[1]["storage"]["storageDriver"]["rootdirectory"].strip("/")
        assert f"/{owner_root}/{owner_root}/{repo}/blobs/" in r.headers["Location"]
        assert httpx.get(r.headers["Location"], timeout=60).content == data
