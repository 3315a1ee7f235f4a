"""The pushes that tell what `extensions.lint` refuses, for a test against ocireg and one
comparing it with zot: each under its own tag, with the answer's status kept."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from tests.support.oci import (
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    descriptor,
    encode_json,
    image_index,
    image_manifest,
    push_blob,
    push_manifest,
)

TEAM = "org.example.team"
VENDOR = "org.opencontainers.image.vendor"
MANDATORY = [TEAM, VENDOR]
LINT = {"lint": {"enable": True, "mandatoryAnnotations": MANDATORY}}
NOTATION = "application/vnd.cncf.notary.signature"


def push(
    client: httpx.Client,
    repo: str,
    ref: str | None,
    annotations: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    labels_key: str = "Labels",
    **manifest: Any,
) -> tuple[httpx.Response, dict[str, Any]]:
    """An image manifest (its blobs pushed first) under `ref` (None: by digest); the answer
    and the manifest's descriptor."""
    config = encode_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": labels or {}},
            "nonce": uuid.uuid4().hex,
        }
    )
    layer = uuid.uuid4().bytes * 16
    for blob in (config, layer):
        push_blob(client, repo, blob)
    body, digest = image_manifest(
        descriptor(OCI_CONFIG, config),
        [descriptor(OCI_LAYER, layer)],
        annotations=annotations,
        **manifest,
    )
    desc = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(body)}
    return push_manifest(client, repo, ref or digest, body), desc


def lint_pushes(client: httpx.Client, repo: str) -> dict[str, int]:
    """Each case's status, by the tag it was pushed under."""
    found: dict[str, int] = {}

    def note(tag: str, response: httpx.Response) -> None:
        found[tag] = response.status_code

    note("none", push(client, repo, "none")[0])
    note("partial", push(client, repo, "partial", {TEAM: "a"})[0])
    note("labels", push(client, repo, "labels", {TEAM: "a"}, {VENDOR: "v"})[0])
    # zot reads the config as Go decodes JSON into a struct: keys in any case
    note("labels-case", push(client, repo, "labels-case", {TEAM: "a"}, {VENDOR: "v"}, "labels")[0])
    complete, child = push(client, repo, "complete", {TEAM: "a", VENDOR: "v"})
    note("complete", complete)
    found["by-digest"] = push(client, repo, None)[0].status_code
    # an index is not linted, nor a signature (notation's type; cosign's tag)
    body, _ = image_index([child])
    note("index", push_manifest(client, repo, "index", body, OCI_INDEX))
    note("notation", push(client, repo, "notation", artifact_type=NOTATION)[0])
    cosign_tag = child["digest"].replace(":", "-") + ".sig"
    found["cosign"] = push(client, repo, cosign_tag)[0].status_code
    note("sha256-short.sig", push(client, repo, "sha256-short.sig")[0])  # zot: any such tag
    # an artifact (empty config) is linted as an image
    empty = push_blob(client, repo, b"{}")
    body, _ = image_manifest(
        {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
        [],
        artifact_type="application/vnd.example.sbom",
    )
    note("artifact", push_manifest(client, repo, "artifact", body))
    return found


def missing_of(response: httpx.Response) -> list[str]:
    """The annotation keys a refusal names (zot's text: `... annotations: [a b]`)."""
    detail = json.loads(response.text)["errors"][0]["detail"]["missingAnnotations"]
    return str(detail).rsplit("[", 1)[1].rstrip("]").split()
