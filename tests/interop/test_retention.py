"""The same `storage.retention` section given to zot and to ocireg, the same tags pushed and
pulled: both keep the same tags. zot applies its policies in its background garbage
collection; ocireg in `ocireg gc` (and its own background run)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import push_image
from tests.support.server import RegistryProcess, base_config, run_cli, wait_until
from tests.support.zot import ZotProcess, zot_config

pytestmark = pytest.mark.slow

RETENTION = {
    "delay": "1s",
    "policies": [
        {
            "repositories": ["ci/**"],
            "keepTags": [
                {"patterns": ["^release-"]},
                {"mostRecentlyPulledCount": 1, "mostRecentlyPushedCount": 1},
            ],
        },
        {"repositories": ["scratch/*"], "keepTags": [{"patterns": ["^keep"]}]},
    ],
}
# ci/app: "b" is the one pulled, "d" the last pushed, "release-1" matches the first entry;
# scratch/app: only the tag matching "^keep"; other/app: no policy, every tag stays.
EXPECTED = {
    "ci/app": {"b", "d", "release-1"},
    "scratch/app": {"keep-me"},
    "other/app": {"x", "y"},
}


def populate(client: httpx.Client) -> None:
    for tag in ("a", "b"):
        push_image(client, "ci/app", tag)
    pulled = client.get("/v2/ci/app/manifests/b", headers={"Accept": "*/*"})
    assert pulled.status_code == 200
    for tag in ("c", "d", "release-1"):
        push_image(client, "ci/app", tag)
    for tag in ("keep-me", "drop-me"):
        push_image(client, "scratch/app", tag)
    for tag in ("x", "y"):
        push_image(client, "other/app", tag)


def tags(client: httpx.Client) -> dict[str, set[str]]:
    found = {}
    for repo in EXPECTED:
        r = client.get(f"/v2/{repo}/tags/list")
        assert r.status_code == 200, r.text
        found[repo] = set(r.json()["tags"] or [])
    return found


def settle(client: httpx.Client, collect: Callable[[], None]) -> dict[str, set[str]]:
    """The tags once collection has applied the policies (or what they were at the end)."""

    def applied() -> dict[str, set[str]] | None:
        collect()
        now = tags(client)
        return now if now == EXPECTED else None

    try:
        return wait_until(applied, timeout=90, interval=1.0)  # type: ignore[no-any-return]
    except TimeoutError:
        return tags(client)


def test_zot_and_ocireg_keep_the_same_tags(tmp_path: Path) -> None:
    kept: dict[str, Any] = {}
    for kind in ("zot", "ocireg"):
        workdir = tmp_path / kind
        workdir.mkdir()
        config = base_config(workdir / "root", workers=2)
        config["storage"].update(gcDelay="1s", retention=RETENTION)
        if kind == "zot":
            cfg = zot_config(config)
            cfg["storage"].update(gc=True, gcInterval="1s")
            proc: RegistryProcess = ZotProcess(workdir, cfg, name="zot")
        else:
            proc = RegistryProcess(workdir, config)
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=30.0) as client:
                populate(client)
                if kind == "zot":
                    kept[kind] = settle(client, lambda: None)
                else:
                    kept[kind] = settle(client, functools.partial(_gc, proc.config_path))
        finally:
            proc.stop()
    assert kept["zot"] == EXPECTED
    assert kept["ocireg"] == kept["zot"]


def _gc(config: Path) -> None:
    """`ocireg gc`, once a dry run shows the pull of ci/app:b noted: the server hands its
    pulls to the metadata store every few seconds (docs/operations.md)."""
    wait_until(lambda: "b" not in _run(config, "--dry-run").get("ci/app", {}).get("tags", []))
    _run(config)


def _run(config: Path, *args: str) -> dict[str, Any]:
    result = run_cli("gc", str(config), *args, timeout=60)
    assert result.returncode == 0, result.stderr
    reports = [json.loads(line) for line in result.stdout.splitlines()]
    return {r["repository"]: r for r in reports}
