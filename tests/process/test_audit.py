"""`log.audit` (zot's key): every change that succeeded (POST, PUT, PATCH, DELETE answered
200, 201 or 202) is written to the audit file with who made it and from where; reads and
refusals are not; in a cluster the member that received the request writes it, once."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import write_htpasswd
from tests.support.cluster import cluster_configs, repo_owned_by, running_members
from tests.support.oci import push_image
from tests.support.server import (
    RegistryProcess,
    base_config,
    free_port,
    running_registry,
    wait_until,
)


def entries(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_changes_are_audited_with_their_subject_and_nothing_else(tmp_path: Path) -> None:
    audit = tmp_path / "audit.log"
    config = base_config(tmp_path / "root")
    config["log"]["audit"] = str(audit)
    htpasswd = write_htpasswd(tmp_path / "htpasswd", {"alice": "secret"})
    config["http"]["auth"] = {"htpasswd": {"path": str(htpasswd)}}
    with running_registry(tmp_path, config) as proc:
        with httpx.Client(base_url=proc.url, auth=("alice", "secret")) as c:
            image = push_image(c, "team/app", "v1")
            assert c.get("/v2/team/app/manifests/v1").status_code == 200  # a read
            assert c.put("/v2/team/app/manifests/bad", content=b"{}").status_code == 400
            assert c.delete("/v2/team/app/manifests/v1").status_code == 202
        with httpx.Client(base_url=proc.url) as anonymous:
            assert anonymous.post("/v2/team/app/blobs/uploads/").status_code == 401
        wanted = ("DELETE", "/v2/team/app/manifests/v1")
        lines = wait_until(
            lambda: (e := entries(audit)) and (e[-1]["action"], e[-1]["object"]) == wanted and e
        )
    assert {e["message"] for e in lines} == {"HTTP API Audit"}
    assert {e["subject"] for e in lines} == {"alice"}
    assert all(e["clientIP"].startswith("127.0.0.1:") for e in lines)
    seen = [(e["action"], e["status"]) for e in lines]
    # config and layer: POST (202) and PUT (201) each; the manifest; the delete
    assert seen == [("POST", 202), ("PUT", 201)] * 2 + [("PUT", 201), ("DELETE", 202)]
    assert lines[-2]["object"] == "/v2/team/app/manifests/v1"
    blob_put = lines[1]["object"]
    # the query as the client sent it (zot's `object` too)
    assert blob_put.startswith("/v2/team/app/blobs/uploads/") and "?digest=sha256%3A" in blob_put
    assert image.digest not in {e["object"] for e in lines}  # pushed by tag


def test_a_forwarded_change_is_audited_by_the_member_the_client_reached(tmp_path: Path) -> None:
    configs = cluster_configs(tmp_path, count=2, shared_root=False)
    for i, cfg in enumerate(configs):
        cfg["log"]["audit"] = str(tmp_path / f"audit-{i}.log")
    repo = repo_owned_by(0, count=2, prefix="audited")
    with running_members(tmp_path, configs):
        with httpx.Client(base_url=f"http://{configs[1]['cluster']['members'][1]}") as c:
            push_image(c, repo, "v1")
        received = wait_until(lambda: len(entries(tmp_path / "audit-1.log")) == 5 or None)
    assert received
    assert entries(tmp_path / "audit-0.log") == []  # the owner, which stored it
    assert {e["subject"] for e in entries(tmp_path / "audit-1.log")} == {"anonymous"}


class _OnIPv6Loopback(RegistryProcess):
    """A registry listening on [::1] (`http.address` "::1"), reached there."""

    @property
    def url(self) -> str:
        return f"http://[::1]:{self.port}"


def test_an_ipv6_client_is_written_as_go_joins_host_and_port(tmp_path: Path) -> None:
    """zot writes the request's RemoteAddr, which Go forms with net.JoinHostPort: an IPv6
    host in brackets ("[::1]:40000"), so that the port can be told from the address (what
    net.SplitHostPort reads back)."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    audit = tmp_path / "audit.log"
    config = base_config(tmp_path / "root", port=free_port("::1"))
    config["http"]["address"] = "::1"
    config["log"]["audit"] = str(audit)
    proc = _OnIPv6Loopback(tmp_path, config).start()
    try:
        with httpx.Client(base_url=proc.url, timeout=30.0) as c:
            push_image(c, "app", "v1")
        lines = wait_until(lambda: len(e := entries(audit)) == 5 and e)
    finally:
        proc.stop()
    assert [e["object"] for e in lines][-1] == "/v2/app/manifests/v1"
    for e in lines:
        assert re.fullmatch(r"\[::1\]:[1-9][0-9]*", e["clientIP"]), e["clientIP"]
