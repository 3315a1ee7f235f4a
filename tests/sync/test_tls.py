"""An HTTPS upstream: its CA from `certDir` (Docker's certs.d layout), or `tlsVerify: false`;
an upstream whose certificate cannot be verified is an error that says so."""

from __future__ import annotations

import shutil
import ssl
from pathlib import Path

import httpx

from tests.support.oci import assert_error, push_image, unique_repo
from tests.support.pki import TestCA
from tests.sync.conftest import docker_registry, mirror


def test_certdir_tlsverify_and_an_unverifiable_upstream(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "ca")
    with docker_registry(tmp_path / "up", tls=ca.issue("upstream", "127.0.0.1")) as upstream:
        repo = unique_repo("tls")
        trust = ssl.create_default_context(cafile=str(ca.files.cert))
        with httpx.Client(base_url=upstream.url, verify=trust, timeout=30) as up:
            image = push_image(up, repo, "v1")
        certs = tmp_path / "certs.d"
        certs.mkdir()
        shutil.copy(ca.files.cert, certs / "ca.crt")
        entries = {
            "certdir": {"urls": [upstream.url], "onDemand": True, "certDir": str(certs)},
            "insecure": {"urls": [upstream.url], "onDemand": True, "tlsVerify": False},
            "default": {"urls": [upstream.url], "onDemand": True},
        }
        for name, entry in entries.items():
            with mirror(tmp_path / name, [entry]) as proc:
                r = httpx.get(f"{proc.url}/v2/{repo}/manifests/v1", timeout=30)
                if name == "default":
                    assert_error(r, 503, "UNAVAILABLE")
                    assert "certificate" in r.text.lower()
                else:
                    assert r.status_code == 200 and r.content == image.manifest
