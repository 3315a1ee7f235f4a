"""Members over HTTPS that require client certificates, the proxy presenting its own."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.support.cluster import cluster_configs, repo_owned_by
from tests.support.oci import OCI_MANIFEST, manifest_path, push_image
from tests.support.server import RegistryProcess, wait_until

Issued = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(common: str, issuer: Issued | None, san_ip: str | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(issuer[0].subject if issuer else _name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), critical=True)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    if san_ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
            critical=False,
        )
    signer = issuer[1] if issuer else key
    return builder.sign(signer, hashes.SHA256()), key


def _write(directory: Path, stem: str, issued: Issued) -> tuple[str, str]:
    cert, key = issued
    cert_path, key_path = directory / f"{stem}.crt", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert_path), str(key_path)


def test_members_over_https_with_client_certificates(tmp_path: Path) -> None:
    ca = _issue("ocireg test CA", None)
    ca_path, _ = _write(tmp_path, "ca", ca)
    member_cert, member_key = _write(tmp_path, "member", _issue("member", ca, "127.0.0.1"))
    client_cert, client_key = _write(tmp_path, "client", _issue("client", ca))

    configs = cluster_configs(tmp_path, count=3)
    for cfg in configs:
        cfg["http"]["tls"] = {"cert": member_cert, "key": member_key, "cacert": ca_path}
        cfg["cluster"]["tls"] = {"cert": member_cert, "key": member_key, "cacert": ca_path}
    members = [
        RegistryProcess(tmp_path, cfg, name=f"member{i}").start(wait=False)
        for i, cfg in enumerate(configs)
    ]
    trusted = ssl.create_default_context(cafile=ca_path)
    trusted.load_cert_chain(client_cert, client_key)
    try:
        for member in members:
            wait_until(lambda m=member: httpx.get(f"{m.url}/livez", verify=trusted).is_success)
        repo = repo_owned_by(2, prefix="tls")
        with httpx.Client(base_url=members[0].url, verify=trusted, timeout=30.0) as client:
            image = push_image(client, repo, "v1", layer_size=200_000)
        assert (members[0].root / repo / "index.json").exists()  # one shared root
        with httpx.Client(base_url=members[1].url, verify=trusted, timeout=30.0) as client:
            r = client.get(manifest_path(repo, "v1"), headers={"Accept": OCI_MANIFEST})
            assert r.status_code == 200
            assert r.content == image.manifest
        # The owner's access log shows the requests came to it from a member, over TLS.
        assert '"method": "PUT"' in members[2].logs()
        # Without a client certificate the member refuses the handshake.
        no_cert = ssl.create_default_context(cafile=ca_path)
        try:
            httpx.get(f"{members[0].url}/livez", verify=no_cert)
            refused = False
        except httpx.HTTPError:
            refused = True
        assert refused
    finally:
        for member in members:
            member.stop()
