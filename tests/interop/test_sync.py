"""The same `extensions.sync` section given to zot and to ocireg, against one Debian
`docker-registry` upstream: a periodic sync with tag filters brings the same tags, and an
on-demand pull through a destination mapping brings the same manifest, on both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import OCI_MANIFEST, push_image
from tests.support.server import RegistryProcess, base_config, wait_until
from tests.support.zot import ZotProcess, zot_config
from tests.sync.conftest import docker_registry

pytestmark = pytest.mark.slow

TAGS = ["v1.0", "v1.1", "v2.0-rc1", "latest"]


def sync_section(upstream: str) -> dict[str, Any]:
    return {
        "enable": True,
        "registries": [
            {
                "urls": [upstream],
                "onDemand": False,
                "pollInterval": "30s",
                "tlsVerify": False,
                "content": [
                    {"prefix": "library/alpine", "tags": {"regex": "^v", "excludeRegex": "-rc"}}
                ],
            },
            {
                "urls": [upstream],
                "onDemand": True,
                "tlsVerify": False,
                "content": [
                    {"prefix": "library/**", "destination": "/mirror", "stripPrefix": True}
                ],
            },
        ],
    }


def tags_of(client: httpx.Client, repo: str) -> set[str]:
    r = client.get(f"/v2/{repo}/tags/list")
    return set(r.json().get("tags") or []) if r.status_code == 200 else set()


def test_the_same_sync_section_brings_the_same_content(tmp_path: Path) -> None:
    with docker_registry(tmp_path / "upstream") as upstream:
        with httpx.Client(base_url=upstream.url, timeout=30) as up:
            alpine = {tag: push_image(up, "library/alpine", tag) for tag in TAGS}
            busybox = push_image(up, "library/busybox", "1.36")
        seen: dict[str, dict[str, Any]] = {}
        for kind in ("zot", "ocireg"):
            cfg = base_config(tmp_path / f"{kind}-root")
            cfg["extensions"] = {"sync": sync_section(upstream.url)}
            proc: RegistryProcess
            if kind == "zot":
                proc = ZotProcess(tmp_path, zot_config(cfg), name=kind).start()
            else:
                proc = RegistryProcess(tmp_path, cfg, name=kind).start()
            try:
                with httpx.Client(base_url=proc.url, timeout=60) as client:
                    wait_until(
                        lambda c=client: tags_of(c, "library/alpine") >= {"v1.0", "v1.1"},
                        timeout=90,
                    )
                    periodic = tags_of(client, "library/alpine")
                    r = client.get(
                        "/v2/mirror/busybox/manifests/1.36", headers={"Accept": OCI_MANIFEST}
                    )
                    assert r.status_code == 200, (kind, r.text)
                    digests = {
                        tag: client.head(
                            f"/v2/library/alpine/manifests/{tag}",
                            headers={"Accept": OCI_MANIFEST},
                        ).headers.get("docker-content-digest")
                        for tag in periodic
                    }
                    seen[kind] = {
                        "periodic": periodic,
                        "digests": digests,
                        "on_demand": r.headers["docker-content-digest"],
                        "on_demand_body": r.content,
                    }
            finally:
                proc.stop()
    assert seen["zot"]["periodic"] == seen["ocireg"]["periodic"] == {"v1.0", "v1.1"}
    assert seen["zot"]["digests"] == seen["ocireg"]["digests"]
    assert seen["ocireg"]["digests"] == {t: alpine[t].digest for t in ("v1.0", "v1.1")}
    assert seen["zot"]["on_demand"] == seen["ocireg"]["on_demand"] == busybox.digest
    assert seen["zot"]["on_demand_body"] == seen["ocireg"]["on_demand_body"] == busybox.manifest
