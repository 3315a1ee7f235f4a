"""Upstream registries for the sync tests: Debian's docker-registry (distribution 2.8) on a
loopback port, open, behind htpasswd, or behind a token server; and ocireg instances whose
config has an `extensions.sync` section pointing at them."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.servers import PEER_CONFIG
from tests.clients.conftest import Tools
from tests.support.oci import (
    OCI_INDEX,
    Image,
    encode_json,
    push_artifact,
    push_image,
    push_manifest,
)
from tests.support.pki import CertFiles
from tests.support.server import (
    RegistryProcess,
    base_config,
    free_port,
    running_registry,
    wait_until,
)
from tests.support.threaded import QuietHandler
from tests.support.tools import missing, require

DOCKER_REGISTRY = "/usr/bin/docker-registry"
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
EXAMPLE_SBOM = "application/vnd.example.sbom"


@dataclass
class Upstream:
    """A running docker-registry."""

    port: int
    root: Path
    proc: subprocess.Popen[bytes]
    log: Path
    scheme: str = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


@contextlib.contextmanager
def docker_registry(
    workdir: Path, auth: str = "", tls: CertFiles | None = None, port: int | None = None
) -> Iterator[Upstream]:
    """docker-registry serving `workdir/root`; `auth` is an `auth:` YAML section, or none;
    with `tls`, over HTTPS with that certificate; on `port` (say, to restart one that was
    stopped, with what it held), or a free one."""
    if not Path(DOCKER_REGISTRY).exists():
        missing("docker-registry is not installed (`make test` installs it)")
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    root = workdir / "upstream-root"
    config = workdir / "upstream.yml"
    # The benchmark's peer config (Debian's defaults), plus an `auth:` section if given.
    text = PEER_CONFIG.format(root=root, port=port)
    if tls is not None:  # the config ends with its `http:` map: these lines extend it
        text += f"  tls:\n    certificate: {tls.cert}\n    key: {tls.key}\n"
    config.write_text(text + auth)
    log = workdir / "upstream.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [DOCKER_REGISTRY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
        )
    upstream = Upstream(port, root, proc, log, "https" if tls else "http")

    def up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited:\n{log.read_text()[-3000:]}")
        r = httpx.get(f"{upstream.url}/v2/", timeout=1.0, verify=False)
        return r.status_code in (200, 401)

    try:
        wait_until(up, timeout=20)
        yield upstream
    finally:
        upstream.stop()


def sync_config(
    workdir: Path,
    registries: list[dict[str, Any]],
    workers: int = 2,
    storage: dict[str, Any] | None = None,
    **sync: Any,
) -> dict[str, Any]:
    config = base_config(workdir / "mirror-root", workers=workers)
    config["storage"].update(storage or {})
    config["extensions"] = {
        "sync": {"enable": True, "registries": registries, **sync},
        "metrics": {"enable": True},
    }
    return config


@contextlib.contextmanager
def mirror(
    workdir: Path,
    registries: list[dict[str, Any]],
    workers: int = 2,
    storage: dict[str, Any] | None = None,
    **sync: Any,
) -> Iterator[RegistryProcess]:
    """An ocireg whose sync section lists `registries` (and `storage` has these keys more)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = sync_config(workdir, registries, workers, storage, **sync)
    with running_registry(workdir, config, name="mirror") as proc:
        yield proc


def copy_to_upstream(
    tools: Tools, src: Path, upstream: Upstream, repo: str, tag: str = "v1"
) -> None:
    """skopeo copies the layout's `tag` (every platform of an index) to `upstream`'s `repo`."""
    tools.run(
        [
            require("skopeo"),
            "--policy",
            str(tools.policy),
            "copy",
            "--all",
            "--dest-tls-verify=false",
            f"oci:{src}:{tag}",
            f"docker://{upstream.host}/{repo}:{tag}",
        ]
    )


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    with docker_registry(tmp_path_factory.mktemp("upstream")) as server:
        yield server


@pytest.fixture(scope="module")
def ocireg_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryProcess]:
    """An ocireg as the upstream: it has the referrers API, and its access log tells what a
    mirror asked of it."""
    with running_registry(tmp_path_factory.mktemp("ocireg-up"), name="upstream") as proc:
        yield proc


@dataclass
class SignedSet:
    """What `push_signed_set` pushed: four tagged images, three of them signed."""

    images: dict[str, Image]  # notation, cosign, legacy, unsigned

    def legacy_tag(self, suffix: str) -> str:
        """cosign's tag for the `legacy` image: `sha256-<hex>` and `suffix`."""
        return self.images["legacy"].digest.replace(":", "-") + suffix


def push_signed_set(client: httpx.Client, repo: str) -> SignedSet:
    """Into `repo`: `notation` with a notation signature as referrer, `cosign` with a cosign
    one, `legacy` signed only by cosign's `sha256-<hex>.sig` tag (and attested by `.att`),
    and `unsigned`, whose one referrer is an SBOM (a referrer that is no signature)."""
    images = {tag: push_image(client, repo, tag) for tag in ("notation", "cosign", "legacy")}
    push_artifact(client, repo, images["notation"], NOTATION_SIGNATURE)
    push_artifact(client, repo, images["cosign"], COSIGN_SIGNATURE)
    signed = SignedSet(images)
    push_image(client, repo, signed.legacy_tag(".sig"))
    push_image(client, repo, signed.legacy_tag(".att"))
    images["unsigned"] = push_image(client, repo, "unsigned")
    push_artifact(client, repo, images["unsigned"], EXAMPLE_SBOM)
    return signed


def push_fallback_signed(client: httpx.Client, repo: str) -> dict[str, Image]:
    """Into `repo` of a registry without the referrers API: `signed`, whose notation
    signature is listed in the index under the fallback tag `sha256-<hex>` (where notation
    and oras keep it there), and `unsigned`."""
    image = push_image(client, repo, "signed")
    signature = push_artifact(client, repo, image, NOTATION_SIGNATURE)
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [signature.descriptor(artifactType=NOTATION_SIGNATURE)],
    }
    fallback = image.digest.replace(":", "-")
    r = push_manifest(client, repo, fallback, encode_json(index), OCI_INDEX)
    assert r.status_code == 201, r.text
    return {"signed": image, "unsigned": push_image(client, repo, "unsigned")}


class HandWrittenUpstream(QuietHandler):
    """An upstream whose answers a test writes itself (misbehaving ones); HEAD answers as
    GET without the body. Served by `tests.support.threaded.ThreadedServer`."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        raise NotImplementedError

    def _send(
        self,
        status: int,
        body: bytes,
        ctype: str = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for key, text in (headers or {}).items():
            self.send_header(key, text)
        self.end_headers()
        if self.command != "HEAD":
            # the mirror hangs up on what it refuses or gave up waiting for
            with contextlib.suppress(ConnectionError):
                self.wfile.write(body)
