"""`onlySigned` against an upstream whose referrers answers misbehave: descriptors with fields
of the wrong JSON type, a body that is not JSON, a list of thousands, an endpoint that hangs,
and a cosign `.sig` tag of another digest. The client gets the signed image or a clear 404,
never a 500, within the sync timeout; an unsigned image is never stored."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import OCI_INDEX, OCI_MANIFEST, assert_error, descriptor, image_manifest
from tests.support.server import RegistryProcess, wait_until
from tests.support.threaded import ThreadedServer
from tests.sync.conftest import NOTATION_SIGNATURE, HandWrittenUpstream, mirror

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"signed or not " * 100
MANIFEST, DIGEST = image_manifest(
    descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
    [descriptor("application/vnd.oci.image.layer.v1.tar", LAYER)],
)
HEX = DIGEST.partition(":")[2]
SIGNATURE = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "1" * 64, "size": 10}
OTHER = {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "2" * 64, "size": 10}
# Each repository `odd/<kind>` answers its referrers (and tags) one way.
REFERRERS: dict[str, Any] = {
    "listtype": [{**SIGNATURE, "artifactType": [NOTATION_SIGNATURE]}],
    "dicttype": [{**SIGNATURE, "artifactType": {"a": 1}}],
    "annotations": [
        {**SIGNATURE, "annotations": ["org.opencontainers.image.ref.name"]},
        {**SIGNATURE, "annotations": {"org.opencontainers.image.ref.name": {"x": 1}}},
    ],
    "huge": [OTHER] * 20000 + [{**SIGNATURE, "artifactType": NOTATION_SIGNATURE}],
    "othersig": [],
}
TAGS = {"othersig": ["v1", f"sha256-{'3' * 64}.sig", f"sha256-{HEX}.sig.old"]}
HANG = 6.0  # seconds: longer than the mirror's syncTimeout


class SigningRegistry(HandWrittenUpstream):
    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v2/":
            return self._send(200, b"{}")
        parts = path.split("/")
        kind = parts[3] if path.startswith("/v2/odd/") and len(parts) > 3 else ""
        if "/referrers/" in path:
            return self._referrers(kind)
        if path.endswith("/tags/list"):
            body = {"name": f"odd/{kind}", "tags": TAGS.get(kind, ["v1"])}
            return self._send(200, json.dumps(body).encode(), "application/json")
        if "/manifests/sha256-" in path:  # no referrers fallback tag, no cosign tags
            if kind == "sigerror":  # ...or none that can be looked up
                return self._send(500, b'{"errors":[{"code":"UNKNOWN"}]}')
            return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        if "/manifests/" in path:
            return self._send(200, MANIFEST, OCI_MANIFEST, {"Docker-Content-Digest": DIGEST})
        if "/blobs/" in path:
            return self._send(200, CONFIG if path.endswith(CONFIG_HEX) else LAYER)
        return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')

    def _referrers(self, kind: str) -> None:
        if kind == "malformed":
            return self._send(200, b'{"manifests": [', OCI_INDEX)
        if kind == "hang":
            time.sleep(HANG)
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": REFERRERS.get(kind, [])}
        return self._send(200, json.dumps(index).encode(), OCI_INDEX)


CONFIG_HEX = descriptor("", CONFIG)["digest"].partition(":")[2]


@pytest.fixture(scope="module")
def signing_upstream() -> Iterator[str]:
    with ThreadedServer(SigningRegistry) as server:
        yield server.base_url


@pytest.fixture(scope="module")
def signed_mirror(
    signing_upstream: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RegistryProcess]:
    entry = {"urls": [signing_upstream], "onDemand": True, "onlySigned": True, "syncTimeout": "2s"}
    with mirror(tmp_path_factory.mktemp("signed-bad"), [entry]) as proc:
        yield proc


def pull(proc: RegistryProcess, repo: str) -> httpx.Response:
    with httpx.Client(base_url=proc.url, timeout=30) as c:
        return c.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        ("listtype", 404, "MANIFEST_UNKNOWN"),
        ("dicttype", 404, "MANIFEST_UNKNOWN"),
        ("annotations", 404, "MANIFEST_UNKNOWN"),
        ("malformed", 404, "MANIFEST_UNKNOWN"),
        ("othersig", 404, "MANIFEST_UNKNOWN"),
        ("hang", 503, "UNAVAILABLE"),  # not known to be unsigned: the upstream failed
        ("sigerror", 503, "UNAVAILABLE"),  # its `.sig` tag could not be looked up
    ],
)
def test_an_odd_answer_is_no_signature(
    signed_mirror: RegistryProcess, kind: str, status: int, code: str
) -> None:
    started = time.monotonic()
    assert_error(pull(signed_mirror, f"odd/{kind}"), status, code)
    assert time.monotonic() - started < HANG  # the sync timeout, not the upstream's hang
    assert not (signed_mirror.root / "odd" / kind / "index.json").exists()


def test_a_signature_at_the_end_of_a_long_list_counts(signed_mirror: RegistryProcess) -> None:
    r = pull(signed_mirror, "odd/huge")
    assert r.status_code == 200, r.text
    assert r.headers["docker-content-digest"] == DIGEST


def test_cosign_tags_that_cannot_be_looked_up_leave_the_image_synced(
    signing_upstream: str, tmp_path: Path
) -> None:
    """Without `onlySigned` the cosign and fallback tags are best effort: the image is
    served and stored although looking them up failed, and the log says so."""
    entry = {"urls": [signing_upstream], "onDemand": True, "syncTimeout": "2s"}
    with mirror(tmp_path, [entry]) as proc:
        r = pull(proc, "odd/sigerror")
        assert r.status_code == 200, r.text
        assert r.headers["docker-content-digest"] == DIGEST
        wait_until(lambda: "referrers not synced" in proc.logs())
        assert (proc.root / "odd" / "sigerror" / "index.json").exists()
