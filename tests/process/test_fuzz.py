"""A fuzz run over the whole route table with a fixed seed: every method on every endpoint,
odd and hostile names, encoded and repeated query keys, odd headers, forged hop headers and
bodies that stop early. No answer may be a 5xx, the log may hold no traceback, the server
must still answer, and nothing outside the fuzzed repositories may change on disk."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.support.cluster import running_cluster
from tests.support.oci import push_image, sha256_digest
from tests.support.server import RegistryProcess, running_registry

SEED = 20261206
REQUESTS = 900
VICTIM = "victim/app"

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND"]
TEMPLATES = [
    "/v2/",
    "/v2",
    "/v2/_catalog",
    "/v2/{name}/blobs/uploads/",
    "/v2/{name}/blobs/uploads/{session}",
    "/v2/{name}/blobs/{digest}",
    "/v2/{name}/manifests/{ref}",
    "/v2/{name}/tags/list",
    "/v2/{name}/referrers/{digest}",
    "/v2/{name}",
    "/v2/{name}/blobs",
    "/livez",
    "/readyz",
    "/metrics",
    "/{junk}",
]
# Names under fuzz/ may be changed by the fuzz; the others try to reach the victim.
NAMES = [
    "fuzz/a",
    "fuzz/a/b",
    "fuzz/manifests/x",
    "fuzz/a/blobs",
    "fuzz/a/blobs/sha256/" + "0" * 64,
    "fuzz/index.json",
    "fuzz/oci-layout",
    "fuzz/.uploads",
    "fuzz/../victim/app",
    "fuzz/%2e%2e/victim/app",
    "fuzz/%2Fvictim",
    "victim/app/blobs",
    "victim/app/index.json",
    "victim/app/blobs/sha256",
    "FUZZ/Upper",
    "fuzz//double",
    "fuzz/" + "a" * 300,
    "fuzz/a%00b",
    "fuzz/\u00e9t\u00e9",
    "",
    "/",
    "..",
    ".ocireg",
]
REFS = ["latest", "v1", "..", "a" * 200, "%2F", "sha256:" + "1" * 64, "sha256:xyz", "t@g", ""]
SESSIONS = [str(uuid.uuid4()), "..", "abc", "x" * 300, "%2e%2e", "00000000-0000-0000-0000-0"]
QUERY_KEYS = ["digest", "mount", "from", "n", "last", "artifactType", "%64igest", "%66rom", "x"]
HEADERS = [
    ("Content-Range", "bytes=0-"),
    ("Content-Range", "0-99999999999999999999999"),
    ("Content-Range", "5-2"),
    ("Content-Range", "-1-3"),
    ("Content-Type", "application/vnd.oci.image.index.v1+json"),
    ("Content-Type", 'a/b; x="\\""'),
    ("Range", "bytes=0-0,2-3"),
    ("Range", "bytes=-0"),
    ("Range", "bytes=99999999999999999999-"),
    ("Accept", "*/*;q=x"),
    ("Authorization", "Basic !!!"),
    ("Authorization", "Bearer a.b.c"),
    ("X-Request-Id", "../../etc/passwd"),
    ("X-Request-Id", "x" * 500),
    ("X-Zot-Cluster-Hop-Count", "1"),
    ("X-Zot-Cluster-Hop-Count", "-99999999999999999999"),
    ("X-Ocireg-Cluster-Proof", "AAAA"),
    ("X-Ocireg-Cluster-Identity", "e30"),
    ("Expect", "100-continue"),
]


@pytest.fixture(scope="module", params=["single", "cluster"])
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[list[RegistryProcess]]:
    """The processes under test, the first one the entry: one instance, or a member of a
    three-member cluster on one root (most requests forwarded, hop headers forged)."""
    workdir = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    if request.param == "single":
        with running_registry(workdir, name="fuzz") as registry:
            yield [registry]
    else:
        with running_cluster(workdir) as members:
            yield members


def _snapshot(root: Path) -> dict[str, str]:
    """Every file outside the fuzzed repositories and our private directory, by content."""
    found: dict[str, str] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(("fuzz/", ".ocireg/")) or rel in ("fuzz", ".ocireg"):
            continue
        if path.is_file():
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
        elif path.is_dir():
            found[rel] = "dir"
    return found


def _outside(workdir: Path, root: Path) -> set[str]:
    return {p.as_posix() for p in workdir.rglob("*") if root not in (p, *p.parents)}


def _digest(rng: random.Random, known: list[str]) -> str:
    return rng.choice(
        [
            *known,
            sha256_digest(rng.randbytes(8)),
            "sha256:short",
            "sha512:" + "0" * 64,
            "md5:" + "0" * 32,
            "sha256:" + "A" * 64,
            "..%2F..%2Fetc",
            "sha256+x:" + "0" * 64,
        ]
    )


def _query(rng: random.Random, known: list[str]) -> str:
    pairs = []
    for _ in range(rng.randrange(4)):
        key = rng.choice(QUERY_KEYS)
        value = rng.choice(
            [_digest(rng, known), VICTIM, "fuzz/a", "-1", "1", "10000000000000000000000", "%zz"]
        )
        pairs.append(f"{key}={quote(value, safe='%:/')}")
    return "&".join(pairs)


def _request(rng: random.Random, known: list[str]) -> tuple[str, str, dict[str, str], bytes]:
    method = rng.choice(METHODS)
    template = rng.choice(TEMPLATES)
    name = rng.choice([*NAMES, VICTIM] if method in ("GET", "HEAD") else NAMES)
    path = template.format(
        name=name,
        session=rng.choice(SESSIONS),
        digest=_digest(rng, known),
        ref=rng.choice(REFS),
        junk=rng.choice(["x", "..", "%00", "v2", "metrics/x"]),
    )
    target = quote(path, safe="/%:@+=-._~")
    query = _query(rng, known)
    if query:
        target += "?" + query
    headers = dict(rng.sample(HEADERS, rng.randrange(3)))
    body = rng.choice(
        [
            b"",
            rng.randbytes(rng.randrange(1, 2048)),
            json.dumps({"schemaVersion": 2, "layers": [{"digest": _digest(rng, known)}]}).encode(),
            b"[" * 3000,
        ]
    )
    return method, target, headers, body


def _send(
    registry: RegistryProcess, method: str, target: str, headers: dict[str, str], body: bytes
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", registry.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        if body or method in ("POST", "PUT", "PATCH"):
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body or None)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _send_truncated(registry: RegistryProcess, method: str, target: str, body: bytes) -> None:
    """Promise more body than is sent, then hang up."""
    with socket.create_connection(("127.0.0.1", registry.port), timeout=10) as sock:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Length: {len(body) + 1000}\r\n\r\n"
        ).encode()
        sock.sendall(head + body)


def _is_envelope(data: bytes) -> bool:
    try:
        return bool(json.loads(data)["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return False


def test_fuzz_route_table_finds_no_5xx_and_touches_nothing_else(
    fuzzed: list[RegistryProcess],
) -> None:
    target = fuzzed[0]
    with httpx.Client(base_url=target.url, timeout=30) as client:
        image = push_image(client, VICTIM, "v1", layers=2)
    known = [image.digest, sha256_digest(image.config), *map(sha256_digest, image.layers)]
    root, workdir = target.root, target.workdir
    before, outside_before = _snapshot(root), _outside(workdir, root)

    rng = random.Random(SEED)
    failures = []
    for i in range(REQUESTS):
        method, path, headers, body = _request(rng, known)
        if body and rng.random() < 0.1:
            _send_truncated(target, method, path, body)
            continue
        status, data = _send(target, method, path, headers, body)
        # a 5xx, or an error that is not the spec's envelope (HEAD answers have no body)
        bad_error = status >= 400 and method != "HEAD" and not _is_envelope(data)
        if status >= 500 or bad_error:
            failures.append((i, method, path, headers, status, data[:300]))
    assert not failures, failures

    with httpx.Client(base_url=target.url, timeout=30) as client:
        assert client.get("/livez").status_code == 200
        assert client.get(f"/v2/{VICTIM}/manifests/v1").content == image.manifest
    assert _snapshot(root) == before
    new_outside = _outside(workdir, root) - outside_before
    assert not {p for p in new_outside if not p.endswith((".log", ".json"))}, new_outside
    for process in fuzzed:
        logs = process.logs()
        assert "Traceback" not in logs and "unhandled error" not in logs, logs[-3000:]
