"""GET /v2/_ocireg/search against a real server, on local disk + sqlite and on SeaweedFS +
Redis: what pushes put in the index, what deletes take out, access control, and the rebuild
after the metadata store was lost."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import PASSWORDS, basic, write_htpasswd
from tests.conftest import backend_config
from tests.support.backends import Redis, SeaweedFS
from tests.support.oci import (
    OCI_INDEX,
    Image,
    assert_error,
    encode_json,
    image_index,
    manifest_path,
    push_artifact,
    push_image,
    push_manifest,
)
from tests.support.server import (
    RegistryProcess,
    base_config,
    run_cli,
    running_registry,
    wait_until,
)

SEARCH = "/v2/_ocireg/search"
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
SBOM = "application/vnd.example.sbom.v1+json"
TITLE = "org.opencontainers.image.title"
ANNOTATIONS = {
    TITLE: "Frobnicator Server",
    "org.opencontainers.image.description": "Turns widgets into gadgets",
    "org.opencontainers.image.vendor": "Acme Corporation",
    "org.opencontainers.image.source": "https://example.com/frob.git",
}
ACCESS_CONTROL = {
    "repositories": {
        "**": {
            "anonymousPolicy": ["read"],
            "defaultPolicy": ["read", "create", "update", "delete"],
        },
        "hidden/**": {"policies": [{"users": ["alice"], "actions": ["read", "create"]}]},
    }
}


def search_config(cfg: dict[str, Any], workdir: Path) -> dict[str, Any]:
    htpasswd = write_htpasswd(workdir / "users.htpasswd", PASSWORDS)
    cfg["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    cfg["http"]["accessControl"] = ACCESS_CONTROL
    cfg["extensions"] = {"search": {"enable": True}}
    return cfg


@pytest.fixture(scope="module", params=["sqlite", "s3"])
def registry(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    workdir = tmp_path_factory.mktemp(f"search-{request.param}")
    if request.param == "s3":
        seaweedfs: SeaweedFS = request.getfixturevalue("seaweedfs")
        redis: Redis = request.getfixturevalue("redis_server")
        root, prefix = f"/search{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
        cfg = backend_config(workdir, seaweedfs, redis, root, prefix)
    else:
        cfg = base_config(workdir / "root")
    with running_registry(workdir, search_config(cfg, workdir), name="search") as proc:
        yield proc


@pytest.fixture(scope="module")
def pushed(registry: RegistryProcess) -> dict[str, Image]:
    """What the tests below find: an annotated image tagged twice, an SBOM artifact, a
    two-platform index, and an image in a repository only alice may read."""
    with httpx.Client(base_url=registry.url, timeout=60, auth=basic("bob")) as client:
        web = push_image(client, "apps/web", "v1.2.3", layers=2, annotations=ANNOTATIONS)
        r = push_manifest(client, "apps/web", "latest", web.manifest)
        assert r.status_code == 201, r.text
        sbom = push_artifact(client, "apps/web", web, SBOM, ref="sbom")
        amd = push_image(client, "tools/multi")
        arm = push_image(client, "tools/multi")
        children = [
            amd.descriptor(platform={"os": "linux", "architecture": "amd64"}),
            arm.descriptor(platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ]
        body, digest = image_index(children)
        r = push_manifest(client, "tools/multi", "2024", body, OCI_INDEX)
        assert r.status_code == 201, r.text
        multi = Image("tools/multi", body, digest, OCI_INDEX, b"", [])
    with httpx.Client(base_url=registry.url, timeout=60, auth=basic("alice")) as client:
        secret = push_image(client, "hidden/frob", "v1", annotations={TITLE: "Frobnicator"})
    return {"web": web, "sbom": sbom, "amd": amd, "arm": arm, "multi": multi, "secret": secret}


def size_of(image: Image) -> int:
    return len(image.manifest) + len(image.config) + sum(len(layer) for layer in image.layers)


def summary(repo: str, tag: str, image: Image, **fields: Any) -> dict[str, Any]:
    """The JSON of one tag as the endpoint answers it (`pushed` checked apart)."""
    return {
        "repository": repo,
        "tag": tag,
        "digest": image.digest,
        "mediaType": image.media_type,
        "artifactType": None,
        "size": size_of(image),
        "platforms": [],
        "pushed": "<time>",
        "title": None,
        "description": None,
        "vendor": None,
        "source": None,
    } | fields


def web_tag(images: dict[str, Image], tag: str) -> dict[str, Any]:
    return summary(
        "apps/web",
        tag,
        images["web"],
        artifactType="application/vnd.oci.image.config.v1+json",
        title="Frobnicator Server",
        description="Turns widgets into gadgets",
        vendor="Acme Corporation",
        source="https://example.com/frob.git",
    )


def sbom_tag(images: dict[str, Image]) -> dict[str, Any]:
    return summary("apps/web", "sbom", images["sbom"], artifactType=SBOM)


def multi_tag(images: dict[str, Image]) -> dict[str, Any]:
    amd, arm = images["amd"], images["arm"]
    size = len(images["multi"].manifest) + size_of(amd) + size_of(arm)
    return summary(
        "tools/multi",
        "2024",
        images["multi"],
        size=size,
        platforms=["linux/amd64", "linux/arm64/v8"],
    )


def get(registry: RegistryProcess, user: str | None = None, **params: Any) -> httpx.Response:
    with httpx.Client(base_url=registry.url, timeout=30, auth=basic(user) if user else None) as c:
        return c.get(SEARCH, params=params)


def times_stripped(body: Any) -> Any:
    """The body with each ISO time replaced by "<time>" (checked to be one)."""
    if isinstance(body, dict):
        return {k: times_stripped(v) for k, v in body.items()}
    if isinstance(body, list):
        return [times_stripped(v) for v in body]
    if isinstance(body, str) and ISO.fullmatch(body):
        return "<time>"
    return body


def found(registry: RegistryProcess, text: str, user: str | None = "bob") -> dict[str, Any]:
    r = get(registry, user, q=text)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = times_stripped(r.json())
    return body


def test_found_by_name_tag_annotation_and_artifact_type(
    registry: RegistryProcess, pushed: dict[str, Image]
) -> None:
    web = {"name": "apps/web", "tags": 3, "lastPush": "<time>"}
    web["size"] = size_of(pushed["web"]) + size_of(pushed["sbom"])
    assert found(registry, "apps/w") == {"repositories": [web], "images": []}
    assert found(registry, "V1.2") == {"repositories": [], "images": [web_tag(pushed, "v1.2.3")]}
    # title, description, vendor, source: any of them, any case
    for text in ("frobnicator", "GADGETS", "acme", "frob.git"):
        body = found(registry, text)
        assert body == {
            "repositories": [],
            "images": [web_tag(pushed, "latest"), web_tag(pushed, "v1.2.3")],
        }, text
    assert found(registry, "sbom.v1") == {"repositories": [], "images": [sbom_tag(pushed)]}
    multi = {"name": "tools/multi", "tags": 1, "lastPush": "<time>"}
    multi["size"] = multi_tag(pushed)["size"]
    assert found(registry, "multi") == {"repositories": [multi], "images": []}
    assert found(registry, "nothing-like-this") == {"repositories": [], "images": []}


def test_repository_pages_and_tags(registry: RegistryProcess, pushed: dict[str, Image]) -> None:
    r = get(registry, "bob", n=1)
    assert r.status_code == 200, r.text
    assert [repo["name"] for repo in r.json()["repositories"]] == ["apps/web"]
    assert r.headers["link"] == f'<{SEARCH}?n=1&last=apps%2Fweb>; rel="next"'
    r = get(registry, "bob", n=1, last="apps/web")
    assert [repo["name"] for repo in r.json()["repositories"]] == ["tools/multi"]
    assert "link" not in r.headers
    r = get(registry, "bob", contains="ti")
    assert times_stripped(r.json())["repositories"] == [
        {"name": "tools/multi", "tags": 1, "lastPush": "<time>", "size": multi_tag(pushed)["size"]}
    ]
    r = get(registry, "bob", repository="tools/multi")
    assert r.status_code == 200, r.text
    assert times_stripped(r.json()) == {
        "name": "tools/multi",
        "tags": 1,
        "lastPush": "<time>",
        "size": multi_tag(pushed)["size"],
        "images": [multi_tag(pushed)],
    }
    for n in ("x", "\u00b2", "9" * 5000):  # "²" passes str.isdigit, not int(): was a 500
        assert_error(get(registry, "bob", n=n), 400, "PAGINATION_NUMBER_INVALID")
    r = get(registry, "bob", repository="no/such")
    assert_error(r, 404, "NAME_UNKNOWN")


def test_access_control_hides_a_repository(
    registry: RegistryProcess, pushed: dict[str, Image]
) -> None:
    secret = summary(
        "hidden/frob",
        "v1",
        pushed["secret"],
        artifactType="application/vnd.oci.image.config.v1+json",
        title="Frobnicator",
    )
    assert found(registry, "frobnicator", "alice")["images"][-1] == secret
    assert [i["repository"] for i in found(registry, "frob", "bob")["images"]] == ["apps/web"] * 2
    assert [i["repository"] for i in found(registry, "frob", None)["images"]] == ["apps/web"] * 2
    assert found(registry, "hidden", None) == {"repositories": [], "images": []}
    names = [r["name"] for r in get(registry, "bob").json()["repositories"]]
    assert names == ["apps/web", "tools/multi"]
    names = [r["name"] for r in get(registry, "alice").json()["repositories"]]
    assert names == ["apps/web", "hidden/frob", "tools/multi"]
    assert_error(get(registry, "bob", repository="hidden/frob"), 404, "NAME_UNKNOWN")
    r = get(registry, "alice", repository="hidden/frob")
    assert r.status_code == 200 and [i["tag"] for i in r.json()["images"]] == ["v1"]


def test_deletes_take_tags_out(registry: RegistryProcess) -> None:
    with httpx.Client(base_url=registry.url, timeout=60, auth=basic("bob")) as client:
        one = push_image(client, "gone/soon", "first", annotations={TITLE: "Ephemeral"})
        assert client.put(
            manifest_path("gone/soon", "second"),
            content=one.manifest,
            headers={"Content-Type": one.media_type},
        ).is_success
        assert [i["tag"] for i in found(registry, "ephemeral")["images"]] == ["first", "second"]
        assert client.delete(manifest_path("gone/soon", "first")).status_code == 202
        assert [i["tag"] for i in found(registry, "ephemeral")["images"]] == ["second"]
        assert client.delete(manifest_path("gone/soon", one.digest)).status_code == 202
    assert found(registry, "ephemeral") == {"repositories": [], "images": []}
    body = found(registry, "gone/soon")
    assert body == {
        "repositories": [{"name": "gone/soon", "tags": 0, "lastPush": None, "size": 0}],
        "images": [],
    }


def test_rebuild_meta_restores_the_index(
    registry: RegistryProcess, pushed: dict[str, Image], request: pytest.FixtureRequest
) -> None:
    before = found(registry, "frob", "alice")
    assert len(before["images"]) == 3
    redis: Redis | None = None
    if registry.config["storage"].get("cacheDriver", {}).get("name") == "redis":
        redis = request.getfixturevalue("redis_server")
        redis.command("FLUSHALL")
        # the server notices the empty index and rebuilds it in the background
        wait_until(lambda: found(registry, "frob", "alice") == before, timeout=30)
        redis.command("FLUSHALL")
    done = run_cli("rebuild-meta", str(registry.config_path))
    assert done.returncode == 0, done.stderr
    assert found(registry, "frob", "alice") == before


def test_search_off_is_not_found_and_on_again_rebuilds(tmp_path: Path) -> None:
    cfg = base_config(tmp_path / "root", workers=1)
    on = cfg | {"extensions": {"search": {"enable": True}}}
    with running_registry(tmp_path, on, name="on") as proc, httpx.Client(base_url=proc.url) as c:
        push_image(c, "flip/flop", "v1", annotations={TITLE: "Flipper"})
        assert [i["tag"] for i in c.get(SEARCH, params={"q": "flipper"}).json()["images"]] == ["v1"]
    with running_registry(tmp_path, cfg, name="off") as proc, httpx.Client(base_url=proc.url) as c:
        assert_error(c.get(SEARCH, params={"q": "x"}), 404, "NOT_FOUND")
        assert c.delete(manifest_path("flip/flop", "v1")).status_code == 202  # not indexed
    with running_registry(tmp_path, on, name="on") as proc, httpx.Client(base_url=proc.url) as c:
        # the index was dropped while search was off: rebuilt now, without the deleted tag
        body = wait_until(lambda: c.get(SEARCH, params={"q": "flip"}).json()["repositories"])
        assert [r["tags"] for r in body] == [0]
        assert c.get(SEARCH, params={"q": "flipper"}).json() == {"repositories": [], "images": []}


def test_a_push_by_digest_notes_the_repository(registry: RegistryProcess) -> None:
    with httpx.Client(base_url=registry.url, timeout=60, auth=basic("bob")) as client:
        config = encode_json({"os": "linux"})
        image = push_image(client, "untagged/only", config=config)
    assert image.digest.startswith("sha256:")
    body = found(registry, "untagged")
    assert body["repositories"] == [
        {"name": "untagged/only", "tags": 0, "lastPush": None, "size": 0}
    ]


def test_a_tag_written_by_another_writer_is_repaired_by_the_repository_read(
    registry: RegistryProcess,
) -> None:
    if registry.config["storage"].get("storageDriver"):
        pytest.skip("writes the layout on local disk")
    with httpx.Client(base_url=registry.url, timeout=60, auth=basic("bob")) as client:
        image = push_image(client, "other/writer", "v1", annotations={TITLE: "Sideways"})
    # as a zot member would: a tag in index.json that ocireg's write path did not see
    path = registry.root / "other/writer/index.json"
    index = json.loads(path.read_bytes())
    tag = {"org.opencontainers.image.ref.name": "side"}
    index["manifests"].append(image.descriptor(annotations=tag))
    path.write_text(json.dumps(index))
    assert [i["tag"] for i in found(registry, "sideways")["images"]] == ["v1"]
    r = get(registry, "bob", repository="other/writer")
    assert r.status_code == 200, r.text
    assert [i["tag"] for i in r.json()["images"]] == ["side", "v1"]
    assert [i["tag"] for i in found(registry, "sideways")["images"]] == ["side", "v1"]


def test_a_lone_surrogate_in_a_manifest_is_read_as_go_reads_it(registry: RegistryProcess) -> None:
    """`"\\ud800"` is valid JSON syntax that no UTF-8 text can hold: read as U+FFFD, as Go's
    decoder (zot's) reads it, in the search index and the referrers list; the manifest's
    bytes are kept as pushed."""
    repo = "odd/surrogate"
    with httpx.Client(base_url=registry.url, timeout=60, auth=basic("bob")) as client:
        base = push_image(client, repo, "v1")
        odd = push_artifact(
            client, repo, base, SBOM, annotations={TITLE: "zebracorn \ud800"}, ref="odd"
        )
        assert b"\\ud800" in odd.manifest
        r = client.get(f"/v2/{repo}/referrers/{base.digest}")
        assert r.status_code == 200, r.text
        assert [m["annotations"] for m in r.json()["manifests"]] == [{TITLE: "zebracorn \ufffd"}]
        assert client.get(manifest_path(repo, odd.digest)).content == odd.manifest
    [image] = found(registry, "zebracorn")["images"]
    assert (image["digest"], image["title"]) == (odd.digest, "zebracorn \ufffd")
