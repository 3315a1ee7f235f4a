"""The `oras` PyPI client pushes and pulls artifacts on ocireg."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import RegistryProcess
from tests.support.tools import require_module

oras_client = require_module("oras.client")

pytestmark = pytest.mark.clients


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    # oras uses requests, which honours proxy variables; loopback must go direct.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def client(registry: RegistryProcess) -> Any:
    return oras_client.OrasClient(hostname=f"127.0.0.1:{registry.port}", insecure=True)


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_and_pull_artifact(
    clients_registry: RegistryProcess, tmp_path: Path, chunked: bool
) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    artifact = tmp_path / "artifact.bin"
    artifact.write_bytes(payload)
    target = f"127.0.0.1:{clients_registry.port}/oras/artifact:{'chunked' if chunked else 'mono'}"

    oc = client(clients_registry)
    # A chunk size that does not divide the payload, so the last chunk is short.
    r = oc.push(
        target=target,
        files=[str(artifact)],
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=1024 * 1024,
        quiet=True,
    )
    assert r.status_code == 201
    pushed_digest = r.headers["Docker-Content-Digest"]

    out = tmp_path / "out"
    out.mkdir()
    files = oc.pull(target=target, outdir=str(out))
    assert [Path(f).name for f in files] == ["artifact.bin"]
    assert Path(files[0]).read_bytes() == payload

    # The manifest oras wrote is stored and served as it was pushed.
    ref = target.split("/", 1)[1]
    repo, tag = ref.rsplit(":", 1)
    m = httpx.get(
        f"{clients_registry.url}/v2/{repo}/manifests/{tag}",
        headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
        timeout=30,
    )
    assert m.status_code == 200
    assert m.headers["Docker-Content-Digest"] == pushed_digest
    assert "sha256:" + hashlib.sha256(m.content).hexdigest() == pushed_digest
    layer = m.json()["layers"][0]
    assert layer["digest"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert layer["size"] == len(payload)
