"""Upstreams that misbehave: a digest that does not match, a manifest too large or not JSON,
a blob whose bytes are not its digest, a redirect loop, a transfer that stalls. The image is
not stored, the client gets a clear error (never a 500), and no manifest becomes visible."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.ops.conftest import scrape, value
from tests.support.oci import OCI_MANIFEST, descriptor, image_manifest, sha256_digest
from tests.support.server import RegistryProcess, wait_until
from tests.support.threaded import ThreadedServer
from tests.sync.conftest import HandWrittenUpstream, mirror

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes " * 1000
MANIFEST, DIGEST = image_manifest(
    descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
    [descriptor("application/vnd.oci.image.layer.v1.tar", LAYER)],
)
OTHER_DIGEST = sha256_digest(b"something else")
# The `gated` repository's layer: its second half waits for GATE, so a client that receives
# bytes before the test opens the gate proves the mirror streams the first pull.
BIG_LAYER = bytes(range(256)) * (16 << 10)  # 4 MiB
BIG_MANIFEST, _ = image_manifest(
    descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
    [descriptor("application/vnd.oci.image.layer.v1.tar", BIG_LAYER)],
)
GATE = threading.Event()


class BadRegistry(HandWrittenUpstream):
    """Each repository name under `bad/` is one kind of misbehaviour."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/v2/":
            return self._send(200, b"{}")
        kind = path.split("/")[3] if path.startswith("/v2/bad/") else ""
        if "/manifests/" in path:
            return self._manifest(kind)
        if "/blobs/" in path:
            return self._blob(kind, path.rsplit("/", 1)[1])
        return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')

    def _manifest(self, kind: str) -> None:
        if kind == "digest":
            return self._send(200, MANIFEST, OCI_MANIFEST, {"Docker-Content-Digest": OTHER_DIGEST})
        if kind == "large":
            return self._send(200, b" " * (5 << 20) + MANIFEST, OCI_MANIFEST)
        if kind == "malformed":
            return self._send(200, b'{"schemaVersion": 2, "config": ', OCI_MANIFEST)
        if kind == "redirect":
            return self._send(302, b"", headers={"Location": self.path})
        if kind == "gated":
            return self._send(200, BIG_MANIFEST, OCI_MANIFEST)
        return self._send(200, MANIFEST, OCI_MANIFEST, {"Docker-Content-Digest": DIGEST})

    def _blob(self, kind: str, digest: str) -> None:
        data = CONFIG if digest == sha256_digest(CONFIG) else LAYER
        if kind == "gated" and digest == sha256_digest(BIG_LAYER):
            half = len(BIG_LAYER) // 2
            self.send_response(200)
            self.send_header("Content-Length", str(len(BIG_LAYER)))
            self.end_headers()
            self.wfile.write(BIG_LAYER[:half])
            self.wfile.flush()
            GATE.wait(timeout=30)
            self.wfile.write(BIG_LAYER[half:])
            return None
        if kind == "blobdigest":
            return self._send(200, data[::-1])
        if kind == "stall" and data is LAYER:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[:100])
            self.wfile.flush()
            time.sleep(6)  # longer than the mirror's syncTimeout: it must give up first
            return
        return self._send(200, data)


@pytest.fixture(scope="module")
def bad_mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    with ThreadedServer(BadRegistry) as server:
        url = server.base_url
        entry = {"urls": [url], "onDemand": True, "syncTimeout": "2s"}
        with mirror(tmp_path_factory.mktemp("bad"), [entry]) as proc:
            yield proc


def nothing_visible(proc: RegistryProcess, repo: str) -> None:
    index = proc.root / repo / "index.json"
    if index.exists():
        assert json.loads(index.read_text())["manifests"] == []
    blobs = proc.root / repo / "blobs" / "sha256"
    stored = {p.name for p in blobs.iterdir()} if blobs.exists() else set()
    # Only verified blobs may have been kept (unreferenced until GC); never wrong bytes.
    assert stored <= {sha256_digest(CONFIG)[7:], sha256_digest(LAYER)[7:]}


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("digest", "digest mismatch"),
        ("large", "too large"),
        ("malformed", "malformed manifest"),
        ("redirect", "redirect"),
    ],
)
def test_a_bad_manifest_is_refused_with_a_clear_error(
    bad_mirror: RegistryProcess, kind: str, reason: str
) -> None:
    repo = f"bad/{kind}"
    r = httpx.get(f"{bad_mirror.url}/v2/{repo}/manifests/v1", timeout=30)
    assert r.status_code in (404, 503), r.text
    error = r.json()["errors"][0]
    assert error["code"] in ("MANIFEST_UNKNOWN", "UNAVAILABLE")
    assert reason in json.dumps(error["detail"]), error
    nothing_visible(bad_mirror, repo)


@pytest.mark.parametrize(("kind", "reason"), [("blobdigest", "digest mismatch"), ("stall", "")])
def test_a_bad_blob_fails_its_download_and_the_image_is_not_stored(
    bad_mirror: RegistryProcess, kind: str, reason: str
) -> None:
    """The manifest is verified and answered before the blobs arrive (the first pull is
    streamed), so the failure shows on the blob: a cut transfer, or a JSON error."""
    repo = f"bad/{kind}"
    errors_before = value(scrape(bad_mirror.url), "ocireg_sync_images_total", result="error")
    r = httpx.get(f"{bad_mirror.url}/v2/{repo}/manifests/v1", timeout=30)
    assert r.status_code == 200 and r.content == MANIFEST
    try:
        blob = httpx.get(f"{bad_mirror.url}/v2/{repo}/blobs/{sha256_digest(LAYER)}", timeout=30)
    except httpx.HTTPError:
        pass  # cut short before the last byte: the client never holds unverified bytes
    else:
        assert blob.status_code in (404, 503), blob.status_code
        assert reason in json.dumps(blob.json()["errors"][0]["detail"])

    def copy_failed() -> bool:
        samples = scrape(bad_mirror.url)
        return value(samples, "ocireg_sync_images_total", result="error") > errors_before

    wait_until(copy_failed, timeout=30)
    nothing_visible(bad_mirror, repo)


def test_a_well_behaved_repository_of_the_same_upstream_works(bad_mirror: RegistryProcess) -> None:
    r = httpx.get(f"{bad_mirror.url}/v2/good/image/manifests/v1", timeout=30)
    assert r.status_code == 200 and r.content == MANIFEST


def test_the_first_pull_streams_a_blob_while_it_is_copied(bad_mirror: RegistryProcess) -> None:
    repo = "bad/gated"
    r = httpx.get(f"{bad_mirror.url}/v2/{repo}/manifests/v1", timeout=30)
    assert r.status_code == 200 and r.content == BIG_MANIFEST
    received = bytearray()
    url = f"{bad_mirror.url}/v2/{repo}/blobs/{sha256_digest(BIG_LAYER)}"
    try:
        with httpx.stream("GET", url, timeout=20) as blob:
            assert blob.status_code == 200
            assert int(blob.headers["content-length"]) == len(BIG_LAYER)
            for piece in blob.iter_raw():
                received += piece
                GATE.set()  # bytes arrived while the upstream still holds the second half
    finally:
        GATE.set()
    assert received == BIG_LAYER
    stored = bad_mirror.root / repo / "blobs" / "sha256" / sha256_digest(BIG_LAYER)[7:]
    wait_until(stored.exists)
