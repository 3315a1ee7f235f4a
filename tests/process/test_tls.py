"""http.tls: HTTPS serving, and http.tls.cacert requiring client certificates."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.support.pki import TestCA
from tests.support.server import RegistryProcess, base_config, wait_until


def _start(
    tmp_path: Path, tls: dict[str, str], client_cert: tuple[str, str] | None
) -> RegistryProcess:
    config = base_config(tmp_path / "root", workers=1)
    config["http"]["tls"] = tls
    proc = RegistryProcess(tmp_path, config)
    proc.start(wait=False)
    verify = ssl.create_default_context(
        cafile=tls.get("cacert") or str(tmp_path / "pki" / "ca.crt")
    )
    if client_cert:
        verify.load_cert_chain(*client_cert)

    def probe() -> bool:
        return httpx.get(f"{proc.url}/livez", verify=verify, timeout=2).status_code == 200

    try:
        wait_until(probe, timeout=30)
    except TimeoutError:
        proc.stop()
        raise
    return proc


def test_https_serves_the_api(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("server", "127.0.0.1", client=False)
    proc = _start(tmp_path, {"cert": str(server.cert), "key": str(server.key)}, None)
    try:
        context = ssl.create_default_context(cafile=str(ca.files.cert))
        r = httpx.get(f"{proc.url}/v2/", verify=context)
        assert r.status_code == 200
        assert r.headers["docker-distribution-api-version"] == "registry/2.0"
    finally:
        proc.stop()


def test_cacert_requires_a_client_certificate(tmp_path: Path) -> None:
    ca = TestCA(tmp_path / "pki")
    server = ca.issue("server", "127.0.0.1", client=False)
    client = ca.issue("client", "alice", server=False)
    tls = {"cert": str(server.cert), "key": str(server.key), "cacert": str(ca.files.cert)}
    proc = _start(tmp_path, tls, (str(client.cert), str(client.key)))
    try:
        with_cert = ssl.create_default_context(cafile=str(ca.files.cert))
        with_cert.load_cert_chain(str(client.cert), str(client.key))
        assert httpx.get(f"{proc.url}/v2/", verify=with_cert).status_code == 200

        without_cert = ssl.create_default_context(cafile=str(ca.files.cert))
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(f"{proc.url}/v2/", verify=without_cert)

        stranger_ca = TestCA(tmp_path / "other", name="someone else")
        stranger = stranger_ca.issue("client", "mallory", server=False)
        foreign = ssl.create_default_context(cafile=str(ca.files.cert))
        foreign.load_cert_chain(str(stranger.cert), str(stranger.key))
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(f"{proc.url}/v2/", verify=foreign)
    finally:
        proc.stop()
