"""Manifest reads and the S3 requests they cost, measured through a server's metrics: for
the tests of reads answered without a storage round trip (registry/versions.py)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.support.backends import SeaweedFS, s3_request, stored_bytes
from tests.support.oci import OCI_MANIFEST, Image, manifest_path, push_manifest
from tests.support.server import RegistryProcess, wait_until

METRICS = {"metrics": {"enable": True, "prometheus": {"path": "/metrics"}}}
_COUNT = re.compile(r'^ocireg_storage_requests_total\{operation="(\w+)"\} ([\d.e+]+)$', re.M)
RECORD_RETRIES = 3
REF_NAME = "org.opencontainers.image.ref.name"


def storage_requests(member: RegistryProcess) -> dict[str, float]:
    """S3 requests the member's workers sent so far, by operation (their metrics summed)."""
    text = httpx.get(f"{member.url}/metrics", timeout=10).text
    return {op: float(n) for op, n in _COUNT.findall(text)}


class Counted:
    """The S3 requests a member sent during a `with` block, by operation (`sent`)."""

    def __init__(self, member: RegistryProcess) -> None:
        self.member = member
        self.sent: dict[str, float] = {}

    def __enter__(self) -> Counted:
        self._before = storage_requests(self.member)
        return self

    def __exit__(self, *exc: object) -> None:
        after = storage_requests(self.member)
        self.sent = {
            op: n - self._before.get(op, 0)
            for op, n in after.items()
            if n != self._before.get(op, 0)
        }


def sent_during(member: RegistryProcess, reads: list[str]) -> dict[str, float]:
    """The S3 requests `member` sent while answering GET (and HEAD) of each path. Each
    worker of a cluster member also rewrites its member record (one PutObject,
    cluster/peers.py RECORD_EVERY): a window that saw only that is measured again, a bounded
    number of times, so that the answer is about the reads."""
    for _ in range(RECORD_RETRIES):
        sent = _sent_once(member, reads)
        if set(sent) != {"PutObject"}:
            return sent
    return sent


def _sent_once(member: RegistryProcess, reads: list[str]) -> dict[str, float]:
    before = storage_requests(member)
    # A connection each: a connection stays with one worker, and every worker must answer.
    headers = {"Accept": OCI_MANIFEST, "Connection": "close"}
    with httpx.Client(base_url=member.url, timeout=30) as client:
        for path in reads:
            for method in ("GET", "HEAD"):
                r = client.request(method, path, headers=headers)
                assert r.status_code == 200, (method, path, r.status_code, r.text)
    after = storage_requests(member)
    return {op: n - before.get(op, 0) for op, n in after.items() if n != before.get(op, 0)}


def wait_fast(members: list[RegistryProcess], reads: list[str]) -> None:
    """Until every member answers `reads` with no request to S3 (in a cluster each worker
    has probed its peers and learnt that all keep the keys; and each holds the index in
    its cache)."""
    for member in members:
        wait_until(lambda m=member: sent_during(m, reads * 4) == {}, timeout=30, interval=0.3)


def digest_through(member: RegistryProcess, repo: str, tag: str, method: str = "GET") -> str:
    """The digest `member` answers for `repo:tag`, on a connection of its own (any worker)."""
    r = httpx.request(
        method,
        f"{member.url}{manifest_path(repo, tag)}",
        headers={"Accept": OCI_MANIFEST, "Connection": "close"},
    )
    assert r.status_code == 200, r.text
    return r.headers["docker-content-digest"]


def retag(member: RegistryProcess, image: Image, tag: str) -> None:
    """Point `tag` at `image` through `member`, on a connection of its own."""
    with httpx.Client(base_url=member.url, timeout=60, headers={"Connection": "close"}) as c:
        r = push_manifest(c, image.repo, tag, image.manifest, image.media_type)
        assert r.status_code == 201, r.text


def fast_paths(repo: str, image: Image, tag: str) -> list[str]:
    """The reads answered without storage: manifest by tag and by digest, tags, referrers."""
    return [
        manifest_path(repo, tag),
        manifest_path(repo, image.digest),
        f"/v2/{repo}/tags/list",
        f"/v2/{repo}/referrers/{image.digest}",
    ]


def move_tag_outside(
    seaweedfs: SeaweedFS, config: dict[str, Any], repo: str, tag: str, target: str, old: str
) -> None:
    """What a writer outside the protocol does (a zot, an S3 client): index.json rewritten
    straight in the bucket, `tag` moved to the manifest `target` and its previous manifest
    renamed `old`."""
    index = json.loads(stored_bytes(config, f"{repo}/index.json"))
    for desc in index["manifests"]:
        names = desc.get("annotations", {})
        if desc["digest"] == target:
            names[REF_NAME] = tag
        elif names.get(REF_NAME) == tag:
            names[REF_NAME] = old
    root = config["storage"]["storageDriver"]["rootdirectory"].strip("/")
    key = f"{root}/{root}/{repo}/index.json"
    assert s3_request(seaweedfs.endpoint, "PUT", key, json.dumps(index).encode()) == 200
