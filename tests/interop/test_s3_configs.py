"""What zot v2.1.20's `verify` and ocireg's say of S3 storage configurations with sub paths
and without a local root (zot's examples config-s3.json and config-all-remote.json, with
Redis where they name DynamoDB). Where the two differ, the difference is documented
(docs/storage.md, "Sub paths" and "No `rootDirectory` on S3 with Redis")."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import run_cli
from tests.support.zot import tool

REDIS = {"remoteCache": True, "cacheDriver": {"name": "redis", "url": "redis://127.0.0.1:6379"}}


def s3(rootdirectory: str, bucket: str = "zot-storage") -> dict[str, Any]:
    return {
        "name": "s3",
        "rootdirectory": rootdirectory,
        "region": "us-east-2",
        "regionendpoint": "http://127.0.0.1:9",
        "bucket": bucket,
        "forcepathstyle": True,
        "secure": False,
    }


def storage(subs: dict[str, Any] | None = None, **keys: Any) -> dict[str, Any]:
    found = {"dedupe": True, **REDIS, "storageDriver": s3("/zot"), **keys}
    if subs is not None:
        found["subPaths"] = subs
    return found


# name -> (storage section, zot's verify accepts it, ocireg's does)
CASES: dict[str, tuple[dict[str, Any], bool, bool]] = {
    # config-all-remote.json with Redis: both accept (zot's serve then stops, ocireg's runs)
    "no rootDirectory": (storage(), True, True),
    # config-s3.json with Redis: sub paths on S3, each with a local root of zot's
    "sub paths on S3": (
        storage(
            {
                "/a": {"rootDirectory": "/tmp/zot1", "storageDriver": s3("/zot-a")},
                "/b": {"rootDirectory": "/tmp/zot2", "storageDriver": s3("/zot-b", "other")},
            },
            rootDirectory="/tmp/zot",
        ),
        True,
        True,
    ),
    "a local sub path under S3": (
        storage({"/a": {"rootDirectory": "/tmp/zot1"}}, rootDirectory="/tmp/zot"),
        True,
        True,
    ),
    # zot compares the local roots of the storages on S3 ("" twice); ocireg needs none
    "sub paths on S3 without local roots": (
        storage({"/a": {"storageDriver": s3("/zot-a")}}),
        False,
        True,
    ),
    # one prefix for two storages: zot lets it be, ocireg refuses
    "a sub path at the default's prefix": (
        storage({"/a": {"rootDirectory": "/tmp/zot1", "storageDriver": s3("/zot")}}),
        True,
        False,
    ),
    # without a remote cache the local root holds the caches (zot's bolt, ocireg's sqlite);
    # zot's check is its dedupe rule (dedupe on S3 needs a remote cache)
    "no rootDirectory, no remote cache": (
        {"dedupe": False, "storageDriver": s3("/zot")},
        True,
        False,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_zot_and_ocireg_verify(tmp_path: Path, name: str) -> None:
    section, zot_accepts, ocireg_accepts = CASES[name]
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            {
                "distSpecVersion": "1.1.1",
                "storage": section,
                "http": {"address": "127.0.0.1", "port": "8080"},
            }
        )
    )
    zot = subprocess.run(
        [str(tool("zot")), "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert (zot.returncode == 0) is zot_accepts, zot.stdout + zot.stderr
    ours = run_cli("verify", str(path))
    assert (ours.returncode == 0) is ocireg_accepts, ours.stdout + ours.stderr
