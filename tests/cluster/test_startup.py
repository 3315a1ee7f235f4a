"""Finding the local member at start-up; names that do not resolve; clear failures.

`.invalid` names never resolve (RFC 6761), so no lookup leaves the machine for an answer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from ocireg.cluster.membership import find_local_member
from ocireg.errors import ConfigError
from tests.support.cluster import HASH_KEY, repo_owned_by
from tests.support.oci import assert_error
from tests.support.server import RegistryProcess, base_config, free_port, run_cli

UNRESOLVABLE = "nonexistent.invalid"


def test_local_member_is_found_by_address_and_port() -> None:
    assert find_local_member(["127.0.0.1:5001", "127.0.0.1:5000"], 5000) == 1
    assert find_local_member(["[::ffff:127.0.0.1]:5000", "10.9.9.9:5000"], 5000) == 0
    assert find_local_member(["192.0.2.77:5000", "localhost:5000"], 5000) == 1


def test_unresolvable_names_are_skipped_when_another_member_is_us() -> None:
    members = [f"{UNRESOLVABLE}:5000", "127.0.0.1:5000"]
    assert find_local_member(members, 5000, timeout=0) == 1


def test_not_a_member_lists_members_and_local_addresses() -> None:
    with pytest.raises(ConfigError) as info:
        find_local_member(["127.0.0.1:5001", "127.0.0.1:5002"], 5000)
    text = str(info.value)
    assert "this instance is not a member" in text
    assert "127.0.0.1:5001" in text
    assert "local addresses: " in text
    assert "127.0.0.1" in text.split("local addresses: ")[1]


def test_names_that_never_resolve_fail_after_the_bounded_wait() -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"did not resolve within 0\.5s"):
        find_local_member([f"{UNRESOLVABLE}:5000", "127.0.0.1:5001"], 5000, timeout=0.5)
    assert time.monotonic() - started < 5


def test_member_starts_with_an_unresolvable_peer_and_answers_503_for_its_repos(
    tmp_path: Path,
) -> None:
    port = free_port()
    # Same port on both, as pods of one StatefulSet have: the peer's name is looked up first.
    cfg = base_config(tmp_path / "root", port=port, workers=1)
    cfg["cluster"] = {
        "members": [f"{UNRESOLVABLE}:{port}", f"127.0.0.1:{port}"],
        "hashKey": HASH_KEY,
    }
    member = RegistryProcess(tmp_path, cfg, name="member1").start()
    try:
        with httpx.Client(base_url=member.url, timeout=30.0) as client:
            mine = repo_owned_by(1, count=2, prefix="dns")
            r = client.get(f"/v2/{mine}/tags/list")
            assert_error(r, 404, "NAME_UNKNOWN")
            theirs = repo_owned_by(0, count=2, prefix="dns")
            started = time.monotonic()
            r = client.get(f"/v2/{theirs}/tags/list")
            assert time.monotonic() - started < 3.5
            err = assert_error(r, 503, "UNAVAILABLE")
            assert err["detail"] == {"member": f"{UNRESOLVABLE}:{port}"}
    finally:
        member.stop()


def _write_config(tmp_path: Path, cluster: dict[str, object], port: int) -> Path:
    cfg = base_config(tmp_path / "root", port=port, workers=1)
    cfg["cluster"] = cluster
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return path


def test_serve_fails_clearly_when_this_instance_is_not_a_member(tmp_path: Path) -> None:
    port = free_port()
    others = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    config = _write_config(tmp_path, {"members": others, "hashKey": HASH_KEY}, port)
    result = run_cli("serve", str(config), timeout=60)
    assert result.returncode == 1
    assert "this instance is not a member" in result.stderr
    assert others[0] in result.stderr
    assert f"http.port {port}" in result.stderr
    assert "local addresses" in result.stderr


def test_serve_waits_boundedly_for_names_then_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    members = [f"{UNRESOLVABLE}:{port}", f"127.0.0.1:{free_port()}"]
    config = _write_config(tmp_path, {"members": members, "hashKey": HASH_KEY}, port)
    monkeypatch.setenv("OCIREG_CLUSTER_RESOLVE_TIMEOUT", "1")
    result = run_cli("serve", str(config), timeout=60)
    assert result.returncode == 1
    assert f"{UNRESOLVABLE}:{port}" in result.stderr
    assert "did not resolve within 1s" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("key", ["short", "seventeen-bytes!!", "ünicode-16chars!"])
def test_verify_reports_a_hash_key_that_is_not_16_bytes(tmp_path: Path, key: str) -> None:
    members = ["127.0.0.1:5000", "127.0.0.1:5001"]
    config = _write_config(tmp_path, {"members": members, "hashKey": key}, 5000)
    result = run_cli("verify", str(config))
    assert result.returncode == 1
    assert "cluster.hashKey" in result.stderr
    assert "16 bytes" in result.stderr
