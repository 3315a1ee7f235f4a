"""zot's `storage.subPaths` with S3 (its example config-s3.json): sub paths with a
`storageDriver` of their own (a prefix of the default's bucket, another bucket), and one on
local disk, under a default on S3 with Redis; real SeaweedFS, Redis, an ocireg process and
skopeo. Each repository's objects are under the bucket and prefix its first name component
picks; the catalog joins the storages; a mount across two copies; GC and `rebuild-meta` go
through every storage; a cluster's members share them. A config with no
`storage.rootDirectory` (config-all-remote.json) serves too."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.clients.conftest import Tools, require, tools  # noqa: F401  (the fixture)
from tests.clients.layout import build_image_layout
from tests.conftest import s3_cluster_configs, use_backend
from tests.support.backends import BUCKET, Redis, SeaweedFS
from tests.support.cluster import repo_owned_by, running_members
from tests.support.oci import (
    assert_image_pulls,
    push_blob,
    push_image,
    random_bytes,
    sha256_digest,
)
from tests.support.server import base_config, run_cli, running_registry, wait_until

OTHER_BUCKET = "ocireg-sub"


def skopeo(kit: Tools, *args: str) -> str:
    return kit.run([require("skopeo"), "--policy", str(kit.policy), *args]).stdout


def configured(
    tmp_path: Path, seaweedfs: SeaweedFS, redis: Redis, **sub_keys: Any
) -> tuple[dict[str, Any], dict[str, tuple[str, str]]]:
    """S3 + Redis by default; `/team` on S3 in the same bucket, `/ext` on S3 in another
    bucket, `/disk` on local disk. Returns the config and, per storage ("" the default's),
    its bucket and key prefix (zot's doubled rootdirectory)."""
    tag = uuid.uuid4().hex[:8]
    config = base_config(tmp_path / "local")
    use_backend(config, seaweedfs, redis, f"/d{tag}", f"sub-{tag}")
    seaweedfs.make_bucket(OTHER_BUCKET)
    config["storage"]["subPaths"] = {
        "/team": {"storageDriver": seaweedfs.storage_driver(f"/t{tag}"), **sub_keys},
        "/ext": {
            "rootDirectory": str(tmp_path / "zot-cache-ext"),  # zot's cache: unused here
            "storageDriver": seaweedfs.storage_driver(f"/e{tag}", bucket=OTHER_BUCKET),
            **sub_keys,
        },
        "/disk": {"rootDirectory": str(tmp_path / "disk"), **sub_keys},
    }
    places = {
        "": (BUCKET, f"d{tag}/d{tag}/"),
        "team": (BUCKET, f"t{tag}/t{tag}/"),
        "ext": (OTHER_BUCKET, f"e{tag}/e{tag}/"),
    }
    return config, places


def where(repo: str) -> str:
    """The storage zot's rule gives `repo`: its first component's sub path, else ""."""
    first, slash, _ = repo.partition("/")
    return first if slash and first in ("team", "ext", "disk") else ""


def keys(seaweedfs: SeaweedFS, bucket: str, prefix: str) -> set[str]:
    client = seaweedfs.client()
    found: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update(o["Key"][len(prefix) :] for o in page.get("Contents", []))
    return found


def stored(
    seaweedfs: SeaweedFS, places: dict[str, tuple[str, str]], tmp: Path, repo: str, path: str
) -> set[str]:
    """The storages (of "", team, ext, disk) that hold `<repo>/<path>`."""
    found = {name for name, place in places.items() if f"{repo}/{path}" in keys(seaweedfs, *place)}
    if (tmp / "disk" / repo / path).is_file():
        found.add("disk")
    if (tmp / "local" / repo / path).exists():
        found.add("local root")  # never: the default is on S3
    return found


REPOS = ("team/app", "team/x/y", "ext/app", "disk/app", "team", "solo/app")


def first_layer(layout: Path, manifest: str) -> str:
    body = json.loads((layout / "blobs" / "sha256" / manifest.split(":")[1]).read_bytes())
    digest: str = body["layers"][0]["digest"]
    return digest


def test_skopeo_pushes_and_pulls_through_every_storage(
    tools: Tools,  # noqa: F811
    tmp_path: Path,
    seaweedfs: SeaweedFS,
    redis_server: Redis,
) -> None:
    config, places = configured(tmp_path, seaweedfs, redis_server)
    with running_registry(tmp_path, config) as proc:
        host = f"127.0.0.1:{proc.port}"
        manifests, layers = {}, {}
        for n, repo in enumerate(REPOS):
            src = tmp_path / f"src{n}"
            manifests[repo] = build_image_layout(src, "v1", seed=n).digest
            layers[repo] = first_layer(src, manifests[repo])
            target = f"docker://{host}/{repo}:v1"
            skopeo(tools, "copy", "--dest-tls-verify=false", f"oci:{src}:v1", target)
        for n, repo in enumerate(REPOS):
            assert stored(seaweedfs, places, tmp_path, repo, "index.json") == {where(repo)}, repo
            blob = f"blobs/sha256/{layers[repo][7:]}"
            assert stored(seaweedfs, places, tmp_path, repo, blob) == {where(repo)}, repo
            target, dst = f"docker://{host}/{repo}:v1", tmp_path / f"dst{n}"
            skopeo(tools, "copy", "--src-tls-verify=false", target, f"oci:{dst}:v1")
            assert (
                json.loads((dst / "index.json").read_text())["manifests"][0]["digest"]
                == (manifests[repo])
            )
            assert (dst / "blobs" / "sha256" / layers[repo][7:]).is_file()
        with httpx.Client(base_url=proc.url, timeout=30) as c:
            assert c.get("/v2/_catalog").json()["repositories"] == sorted(REPOS)
            # a mount from another bucket copies the blob into the target's bucket
            layer = layers["team/app"]
            r = c.post(f"/v2/ext/copy/blobs/uploads/?mount={layer}&from=team/app")
            assert r.status_code == 201, r.text
            copied = stored(seaweedfs, places, tmp_path, "ext/copy", f"blobs/sha256/{layer[7:]}")
            assert copied == {"ext"}
            assert sha256_digest(c.get(f"/v2/ext/copy/blobs/{layer}").content) == layer
    # an empty metadata store (another key prefix) rebuilt from storage: every storage's
    # repositories are found
    config["storage"]["cacheDriver"]["keyprefix"] += "-rebuilt"
    rebuilt = tmp_path / "rebuilt.json"
    rebuilt.write_text(json.dumps(config))
    result = run_cli("rebuild-meta", str(rebuilt))
    assert result.returncode == 0, result.stderr
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        assert c.get("/v2/_catalog").json()["repositories"] == sorted({*REPOS, "ext/copy"})


def test_each_storage_is_collected_by_its_own_keys(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """The background GC collects `/team` (on S3) every second; `/ext` (S3, another
    bucket) and `/disk` have gc on with an hour's interval: `ocireg gc` collects them; the
    default's gc is off."""
    config, places = configured(tmp_path, seaweedfs, redis_server, gc=True, gcDelay="0s")
    config["storage"]["gc"] = False
    # (a blob younger than gcDelay is kept: the image's, until its manifest is pushed)
    config["storage"]["subPaths"]["/team"].update(gcDelay="3s", gcInterval="1s")
    orphans = {repo: random_bytes(1000) for repo in ("team/app", "ext/app", "disk/app", "solo")}

    def present(repo: str) -> bool:
        path = f"blobs/sha256/{sha256_digest(orphans[repo])[7:]}"
        return bool(stored(seaweedfs, places, tmp_path, repo, path))

    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        for repo, data in orphans.items():
            push_image(c, repo, "v1")
            push_blob(c, repo, data)
        assert all(present(repo) for repo in orphans)
        wait_until(lambda: not present("team/app"), timeout=60)
        assert present("ext/app") and present("disk/app") and present("solo")
    result = run_cli("gc", str(proc.config_path))
    assert result.returncode == 0, result.stderr
    assert not present("ext/app") and not present("disk/app")
    assert present("solo")  # gc off there


def test_a_sub_path_on_s3_under_a_default_on_disk(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    """The reverse: the default storage on local disk with the embedded sqlite store, one
    sub path in a bucket; sessions, blobs and index.json of `team/...` go to the bucket."""
    tag = uuid.uuid4().hex[:8]
    config = base_config(tmp_path / "root")
    config["storage"]["subPaths"] = {
        "/team": {"storageDriver": seaweedfs.storage_driver(f"/t{tag}")}
    }
    places = {"team": (BUCKET, f"t{tag}/t{tag}/")}
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        images = {
            repo: push_image(c, repo, "v1", layer_size=300_000) for repo in ("team/app", "solo")
        }
        for repo, image in images.items():
            assert_image_pulls(c, image, "v1")
            layer = f"blobs/sha256/{sha256_digest(image.layers[0])[7:]}"
            in_bucket = stored(seaweedfs, places, tmp_path, repo, layer)
            on_disk = (tmp_path / "root" / repo / layer).is_file()
            assert (in_bucket, on_disk) == (({"team"}, False) if repo != "solo" else (set(), True))
        assert c.get("/v2/_catalog").json()["repositories"] == ["solo", "team/app"]


def test_a_cluster_shares_its_sub_paths_on_s3(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """Three members on S3 + Redis, one sub path in another bucket: an image pushed through
    a member that does not own its repository is read whole through every other one, and
    its objects are in the sub path's bucket."""
    configs = s3_cluster_configs(tmp_path, seaweedfs, redis_server)
    tag = uuid.uuid4().hex[:8]
    seaweedfs.make_bucket(OTHER_BUCKET)
    driver = seaweedfs.storage_driver(f"/c{tag}", bucket=OTHER_BUCKET)
    for config in configs:
        config["storage"]["subPaths"] = {"/team": {"storageDriver": driver}}
    repo = repo_owned_by(1, prefix="team")
    with running_members(tmp_path, configs) as members:
        with httpx.Client(base_url=members[0].url, timeout=60) as c:
            image = push_image(c, repo, "v1", layer_size=300_000)
        for member in members[1:]:
            with httpx.Client(base_url=member.url, timeout=60) as c:
                assert_image_pulls(c, image, "v1")
                assert repo in c.get("/v2/_catalog").json()["repositories"]
    places = {"team": (OTHER_BUCKET, f"c{tag}/c{tag}/")}
    assert stored(seaweedfs, places, tmp_path, repo, "index.json") == {"team"}


def test_no_root_directory_on_s3_with_redis(
    tmp_path: Path, seaweedfs: SeaweedFS, redis_server: Redis
) -> None:
    """zot's config-all-remote.json, with Redis: no `storage.rootDirectory`. Nothing of the
    registry is local; the instance's own files go to the directory `verify` names."""
    config, places = configured(tmp_path, seaweedfs, redis_server)
    del config["storage"]["rootDirectory"]
    path = tmp_path / "all-remote.json"
    path.write_text(json.dumps(config))
    verified = run_cli("verify", str(path))
    assert verified.returncode == 0, verified.stderr
    local = Path(verified.stderr.split("are kept in ", 1)[1].split()[0])
    try:
        with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
            for repo in ("team/app", "solo"):
                push_image(c, repo, "v1")
                assert stored(seaweedfs, places, tmp_path, repo, "index.json") == {where(repo)}
            assert c.get("/v2/_catalog").json()["repositories"] == ["solo", "team/app"]
        assert local.is_dir() and not (tmp_path / "local").exists()
        for command in ("gc", "rebuild-meta"):
            result = run_cli(command, str(path))
            assert result.returncode == 0, result.stderr
    finally:
        shutil.rmtree(local, ignore_errors=True)
