"""Content for the GraphQL tests, pushed through the API, and how to send a query.

One repository holds two tagged images (v1 older, v2 newer, with annotations and config
labels), an artifact tagged `artifact` (an artifactType, annotations, v1 as its subject) and
a notation signature of v1 (a referrer, tagged `notation-sig`); another holds an index of
two platforms, signed by cosign's tag `sha256-<hex>.sig`. zot lists neither signature as
an image.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import SERVICE, TokenServer
from tests.conftest import BACKEND_ENV, use_backend
from tests.support.oci import (
    OCI_INDEX,
    Image,
    descriptor,
    encode_json,
    image_index,
    push_artifact,
    push_image,
    push_manifest,
)
from tests.support.server import RegistryProcess, base_config, running_registry

SEARCH = "/v2/_zot/ext/search"
SEARCH_ON = {"search": {"enable": True}}
UI_ON = {"search": {"enable": True}, "ui": {"enable": True}}  # userprefs, OpenID logins
NOTATION = "application/vnd.cncf.notary.signature"
SBOM = "application/vnd.example.sbom+json"
COSIGN_LAYER = "application/vnd.dev.cosign.simplesigning.v1+json"
V1_CREATED = "2024-03-01T10:00:00.123456789Z"
V2_CREATED = "2024-05-01T10:00:00Z"
ANNOTATIONS = {
    "org.opencontainers.image.title": "The app",
    "org.opencontainers.image.description": "An app for the tests",
    "org.opencontainers.image.licenses": "Apache-2.0",
    "org.opencontainers.image.source": "https://example.test/app",
}


@dataclass
class Content:
    app: str
    multi: str
    v1: Image
    v2: Image
    artifact: Image
    signature: Image
    index_digest: str
    index_body: bytes
    amd64: Image
    arm64: Image


def _config(created: str, arch: str = "amd64", variant: str | None = None) -> bytes:
    doc: dict[str, Any] = {
        "created": created,
        "architecture": arch,
        "os": "linux",
        "config": {"Labels": {"org.opencontainers.image.vendor": "Example Vendor"}},
        "history": [
            {"created": created, "created_by": "ADD rootfs /"},
            {"created": created, "created_by": "ENV A=1", "empty_layer": True},
            {"created": created, "created_by": "RUN make"},
        ],
    }
    if variant:
        doc["variant"] = variant
    return encode_json(doc)


def push_content(client: httpx.Client, prefix: str) -> Content:
    app, multi = f"{prefix}/app", f"{prefix}/multi"
    v1 = push_image(
        client, app, "v1", layers=2, config=_config(V1_CREATED), annotations=ANNOTATIONS
    )
    v2 = push_image(client, app, "v2", layers=2, config=_config(V2_CREATED))
    artifact = push_artifact(
        client, app, v1, SBOM, annotations={"org.example.kind": "sbom"}, ref="artifact"
    )
    signature = push_artifact(
        client, app, v1, NOTATION, annotations={"io.cncf.notary.x": "y"}, ref="notation-sig"
    )
    amd64 = push_image(client, multi, layers=2, config=_config(V1_CREATED))
    arm64 = push_image(client, multi, layers=2, config=_config(V2_CREATED, "arm64", "v8"))
    body, digest = image_index(
        [
            amd64.descriptor(platform={"os": "linux", "architecture": "amd64"}),
            arm64.descriptor(platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ]
    )
    r = push_manifest(client, multi, "latest", body, OCI_INDEX)
    assert r.status_code == 201, r.text
    # cosign's way: a signature tagged after the digest it signs (no subject)
    cosign_tag = digest.replace(":", "-") + ".sig"
    push_image(client, multi, cosign_tag, layer_media_type=COSIGN_LAYER, layer_size=64)
    return Content(app, multi, v1, v2, artifact, signature, digest, body, amd64, arm64)


def image_size(image: Image) -> int:
    """zot's image size: manifest, config and layers."""
    return len(image.manifest) + len(image.config) + sum(len(layer) for layer in image.layers)


def layer_summaries(image: Image) -> list[dict[str, str]]:
    return [
        {"Size": str(len(layer)), "Digest": descriptor("x", layer)["digest"]}
        for layer in image.layers
    ]


def config_digest(image: Image) -> str:
    digest: str = descriptor("x", image.config)["digest"]
    return digest


def gql(client: httpx.Client, query: str, status: int = 200) -> dict[str, Any]:
    """GET ?query=, as zui sends every query; the decoded answer."""
    r = client.get(SEARCH, params={"query": query})
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = r.json()
    return body


def gql_zli(client: httpx.Client, query: str) -> dict[str, Any]:
    """As zli sends a query: GET with ?query= and the same text as the body, declared JSON."""
    r = client.request(
        "GET",
        SEARCH,
        params={"query": query},
        content=query.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# Two repositories behind a token server: a token may push both, or pull only the first.
TOKEN_REPOS = ["tok/seen", "tok/hidden"]
TOKEN_PUSH = [{"type": "repository", "name": n, "actions": ["pull", "push"]} for n in TOKEN_REPOS]
TOKEN_CATALOG = {"type": "registry", "name": "catalog", "actions": ["*"]}
TOKEN_SEEN = {"type": "repository", "name": "tok/seen", "actions": ["pull"]}


def bearer_config(tokens: TokenServer, root: Path, extensions: dict[str, Any]) -> dict[str, Any]:
    """A registry's config whose credentials are the token server's tokens."""
    bearer = {"realm": tokens.realm, "service": SERVICE, "cert": str(tokens.files.cert)}
    cfg = base_config(root, workers=1, extensions=extensions)
    cfg["http"]["auth"] = {"bearer": bearer}
    return cfg


def bearer_client(tokens: TokenServer, url: str, access: list[dict[str, Any]]) -> httpx.Client:
    """A client sending alice's token with this `access` claim."""
    token = tokens.mint("alice", access)
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=url, timeout=30.0, headers=headers)


@pytest.fixture(scope="module")
def registry(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryProcess]:
    """The module's own ocireg with search on (named after the module): local disk, or
    SeaweedFS + Redis with OCIREG_TEST_BACKEND=s3 (as the API tests). test_access.py
    starts its own, with access control."""
    name = "graphql-" + request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")
    workdir = tmp_path_factory.mktemp(name)
    cfg = base_config(workdir / "root", workers=1, extensions=SEARCH_ON)
    if os.environ.get(BACKEND_ENV) == "s3":
        weed, redis = request.getfixturevalue("seaweedfs"), request.getfixturevalue("redis_server")
        use_backend(cfg, weed, redis, f"/{name}", name)
    with running_registry(workdir, cfg, name=name) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(registry: RegistryProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry.url, timeout=30.0) as c:
        yield c
