"""The sample registry content the page tests and the screenshots (`make screenshots`) use:
pub/app with a multi-arch index, an image with a full config and a signature referring to
it; pub/tools, pub/zeta; team/secret with two tags."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from tests.support.oci import (
    OCI_INDEX,
    Image,
    image_index,
    push_artifact,
    push_image,
    push_manifest,
)
from tests.ui.conftest import image_config

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


@dataclass
class Content:
    app_index: str
    plain: Image
    signature: Image
    secret_old: Image


def push_sample(c: httpx.Client) -> Content:
    """Push the sample through `c` (a client allowed to push under pub/ and team/)."""
    amd = push_image(c, "pub/app")
    arm = push_image(c, "pub/app")
    body, index_digest = image_index(
        [
            amd.descriptor(platform={"os": "linux", "architecture": "amd64"}),
            arm.descriptor(platform={"os": "linux", "architecture": "arm64", "variant": "v8"}),
        ]
    )
    assert push_manifest(c, "pub/app", "1.0", body, OCI_INDEX).status_code == 201
    config = image_config(
        Entrypoint=["/app"],
        Cmd=["--serve"],
        Env=["PATH=/usr/bin", "MODE=production"],
        Labels={"org.opencontainers.image.source": "https://example.test/app"},
    )
    plain = push_image(c, "pub/app", "plain", layers=2, config=config)
    signature = push_artifact(c, "pub/app", plain, SIGNATURE)
    push_image(c, "pub/tools", "latest")
    push_image(c, "pub/zeta", "v1")
    secret_old = push_image(c, "team/secret", "old")
    push_image(c, "team/secret", "keep")
    return Content(index_digest, plain, signature, secret_old)
