"""Upstream authentication from `credentialsFile` (keyed by host:port): Basic against
docker-registry with htpasswd, and the Docker token flow against docker-registry behind a
token server."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from tests.auth.conftest import PASSWORDS, SERVICE, TokenServer, basic, write_htpasswd
from tests.support.oci import Image, assert_error, push_image, sha256_digest, unique_repo
from tests.support.server import running_registry, wait_until
from tests.sync.conftest import Upstream, docker_registry, mirror, sync_config


class ChainedTokenServer(TokenServer):
    """distribution checks a token's signer through an `x5c` chain to its root bundle."""

    def mint(self, subject: str | None, access: list[dict[str, Any]], *args: Any, **kw: Any) -> str:
        token = super().mint(subject, access, *args, **kw)
        payload = jwt.decode(token, options={"verify_signature": False})
        cert = x509.load_pem_x509_certificate(self.files.cert.read_bytes())
        chain = [base64.b64encode(cert.public_bytes(Encoding.DER)).decode()]
        return jwt.encode(payload, self.key, algorithm="ES256", headers={"x5c": chain})


def seeded_upstream(workdir: Path) -> tuple[str, Image]:
    """An image pushed to an open docker-registry on `workdir`'s root, which stops then."""
    repo = unique_repo("private")
    with docker_registry(workdir) as open_upstream, httpx.Client(base_url=open_upstream.url) as c:
        return repo, push_image(c, repo, "v1")


def credentials(path: Path, host: str, user: str = "alice") -> Path:
    path.write_text(json.dumps({host: {"username": user, "password": PASSWORDS[user]}}))
    return path


def pull(url: str, repo: str) -> httpx.Response:
    return httpx.get(f"{url}/v2/{repo}/manifests/v1", timeout=30)


def test_basic_credentials_from_the_credentials_file(tmp_path: Path) -> None:
    repo, image = seeded_upstream(tmp_path / "up")
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": PASSWORDS["alice"]})
    auth = f"auth:\n  htpasswd:\n    realm: upstream\n    path: {htpasswd}\n"
    with docker_registry(tmp_path / "up", auth=auth) as upstream:
        entry = {"urls": [upstream.url], "onDemand": True}
        creds = credentials(tmp_path / "creds.json", upstream.host)
        with mirror(tmp_path / "with", [entry], credentialsFile=str(creds)) as proc:
            r = pull(proc.url, repo)
            assert r.status_code == 200 and r.content == image.manifest
        with mirror(tmp_path / "without", [entry]) as proc:
            r = pull(proc.url, repo)
            assert_error(r, 404, "MANIFEST_UNKNOWN")
            assert "credentials" in json.dumps(r.json())


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[ChainedTokenServer]:
    with ChainedTokenServer(tmp_path / "tokens") as server:
        yield server


def test_the_token_flow_with_credentials(tmp_path: Path, token_server: ChainedTokenServer) -> None:
    repo, image = seeded_upstream(tmp_path / "up")
    token_server.grants = {"alice": {repo: ["pull"]}}
    auth = (
        "auth:\n  token:\n"
        f"    realm: {token_server.realm}\n"
        f"    service: {SERVICE}\n"
        "    issuer: test-token-server\n"
        f"    rootcertbundle: {token_server.ca.files.cert}\n"
    )
    with docker_registry(tmp_path / "up", auth=auth) as upstream:
        assert httpx.get(f"{upstream.url}/v2/{repo}/manifests/v1").status_code == 401
        entry = {"urls": [upstream.url], "onDemand": True}
        creds = credentials(tmp_path / "creds.json", upstream.host)
        with mirror(tmp_path / "m", [entry], credentialsFile=str(creds)) as proc:
            r = pull(proc.url, repo)
            assert r.status_code == 200, r.text
            assert r.content == image.manifest
            # A layer, fetched (or followed while it is copied) with the token too. (Not the
            # manifest's digest: docker-registry serves no manifest as a blob, so that GET
            # only worked when the mirror had stored the manifest before it came.)
            digest = sha256_digest(image.layers[0])
            layer = httpx.get(f"{proc.url}/v2/{repo}/blobs/{digest}", timeout=30)
            assert layer.status_code == 200 and layer.content == image.layers[0]
    scopes = [q.get("scope") for q in token_server.requests]
    assert [f"repository:{repo}:pull"] in scopes


def test_a_client_that_may_not_read_triggers_no_fetch(upstream: Upstream, tmp_path: Path) -> None:
    repo = f"secret/{unique_repo('img')}"
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        push_image(up, repo, "v1")
    entry = {"urls": [upstream.url], "onDemand": True}
    config = sync_config(tmp_path, [entry])
    config["http"]["auth"] = {
        "htpasswd": {"path": str(write_htpasswd(tmp_path / "users", PASSWORDS))}
    }
    config["http"]["accessControl"] = {
        "repositories": {"secret/**": {"policies": [{"users": ["alice"], "actions": ["read"]}]}}
    }
    with running_registry(tmp_path, config, name="mirror") as proc:
        url = f"{proc.url}/v2/{repo}/manifests/v1"
        assert_error(httpx.get(url, timeout=30), 401, "UNAUTHORIZED")
        assert_error(httpx.get(url, auth=basic("bob"), timeout=30), 403, "DENIED")
        assert not (proc.root / repo).exists()  # refused before anything was fetched
        assert httpx.get(url, auth=basic("alice"), timeout=30).status_code == 200
        wait_until(lambda: (proc.root / repo / "index.json").exists())
