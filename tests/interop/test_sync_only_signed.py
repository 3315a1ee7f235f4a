"""`onlySigned` and `syncLegacyCosignTags`, side by side: the same sync section given to zot
and to ocireg, against one ocireg upstream holding images signed by notation, by cosign (a
referrer each), by a legacy cosign `.sig` tag, and one unsigned. Both must copy the same set
periodically and answer the same statuses on demand. And an upstream without the referrers
API (docker-registry), whose signature is listed under the fallback tag."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import OCI_MANIFEST, push_artifact, push_image
from tests.support.server import RegistryProcess, base_config, running_registry, wait_until
from tests.support.zot import zot_or_ocireg
from tests.sync.conftest import (
    NOTATION_SIGNATURE,
    SignedSet,
    docker_registry,
    push_fallback_signed,
    push_signed_set,
)

pytestmark = pytest.mark.slow

# What a pass's end looks like in each one's log (zot: per repository).
PASS_DONE = {"zot": "finished syncing repo", "ocireg": "periodic sync done"}


def sync_section(upstream: str, only_signed: bool, legacy: bool) -> dict[str, Any]:
    common = {
        "urls": [upstream],
        "tlsVerify": False,
        "onlySigned": only_signed,
        "syncLegacyCosignTags": legacy,
    }
    return {
        "enable": True,
        "registries": [
            {**common, "onDemand": True, "content": [{"prefix": "ondemand/**"}]},
            {**common, "pollInterval": "1h", "content": [{"prefix": "periodic/**"}]},
        ],
    }


def observe(
    proc: RegistryProcess, kind: str, up: httpx.Client, periodic: SignedSet, on_demand: SignedSet
) -> dict[str, Any]:
    """What a downstream holds after its first periodic pass, and what it answers on demand,
    also for a signed tag it stored that then moves upstream to an unsigned image.
    Differences that are not the ones under test are kept out by the order of the pulls:
    a signed image first (in a repository that does not exist zot answers `NAME_UNKNOWN`,
    ocireg `MANIFEST_UNKNOWN`, docs/api.md), the `.att` tag before its subject (ocireg
    copies a pulled image's referrers behind it, zot does not)."""
    seen: dict[str, Any] = {}
    with httpx.Client(base_url=proc.url, timeout=60) as c:
        wait_until(lambda: PASS_DONE[kind] in proc.logs(), timeout=90)
        r = c.get("/v2/periodic/app/tags/list")
        seen["periodic tags"] = sorted(r.json().get("tags") or []) if r.status_code == 200 else r
        seen["periodic referrers"] = {
            tag: sorted(
                m.get("artifactType")
                for m in c.get(f"/v2/periodic/app/referrers/{image.digest}").json()["manifests"]
            )
            for tag, image in periodic.images.items()
        }
        references = [
            "notation",
            "unsigned",
            on_demand.images["unsigned"].digest,
            on_demand.legacy_tag(".att"),
            "cosign",
            "legacy",
            on_demand.legacy_tag(".sig"),
        ]
        for ref in references:
            for method in ("HEAD", "GET"):
                r = c.request(
                    method, f"/v2/ondemand/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
                )
                code = r.json()["errors"][0]["code"] if method == "GET" and r.is_error else None
                seen[f"{method} {ref}"] = (r.status_code, code)
        moved = f"/v2/ondemand/app/manifests/moved-{kind}"  # one tag per downstream
        before = c.get(moved, headers={"Accept": OCI_MANIFEST}).headers["docker-content-digest"]
        if kind == "ocireg":
            # ocireg answers at once and copies the image (and its signature) behind the
            # answer, serving that copy's manifest until it is stored: the tag moves upstream
            # only once the copy is done, as it is when zot answers.
            referrers = f"/v2/ondemand/app/referrers/{before}"
            wait_until(lambda: c.get(referrers).json().get("manifests"), timeout=30)
        push_image(up, "ondemand/app", f"moved-{kind}")
        r = c.get(moved, headers={"Accept": OCI_MANIFEST})
        seen["moved tag"] = (r.status_code, r.headers.get("docker-content-digest") == before)
    return seen


@pytest.mark.parametrize(
    ("only_signed", "legacy"),
    [(True, True), (True, False), (False, False)],
    ids=["signed", "signed-no-legacy-tags", "no-legacy-tags"],
)
def test_zot_and_ocireg_sync_the_same_signed_images(
    tmp_path: Path, only_signed: bool, legacy: bool
) -> None:
    with running_registry(tmp_path, name="upstream") as upstream:
        with httpx.Client(base_url=upstream.url, timeout=30) as up:
            signed = push_signed_set(up, "periodic/app")
            on_demand = push_signed_set(up, "ondemand/app")
            for kind in ("zot", "ocireg"):
                image = push_image(up, "ondemand/app", f"moved-{kind}")
                push_artifact(up, "ondemand/app", image, NOTATION_SIGNATURE)
        seen: dict[str, dict[str, Any]] = {}
        for kind in ("zot", "ocireg"):
            cfg = base_config(tmp_path / f"{kind}-root")
            cfg["extensions"] = {"sync": sync_section(upstream.url, only_signed, legacy)}
            proc = zot_or_ocireg(kind, tmp_path, cfg).start()
            try:
                with httpx.Client(base_url=upstream.url, timeout=30) as up:
                    seen[kind] = observe(proc, kind, up, signed, on_demand)
            finally:
                proc.stop()
    assert seen["zot"] == seen["ocireg"]
    expected = ["cosign", "notation"]  # the `.sig` tag signs `legacy` only when it counts
    if legacy:
        expected += ["legacy", signed.legacy_tag(".att"), signed.legacy_tag(".sig")]
    if not only_signed:
        expected += ["legacy", "unsigned", signed.legacy_tag(".att")]
    assert seen["ocireg"]["periodic tags"] == sorted(expected)
    # A stored tag moved upstream to an unsigned image: the stored copy is served.
    assert seen["ocireg"]["moved tag"] == (200, only_signed)


def test_a_signature_under_the_fallback_tag_counts_for_both(tmp_path: Path) -> None:
    with docker_registry(tmp_path / "upstream") as upstream:
        with httpx.Client(base_url=upstream.url, timeout=30) as up:
            images = push_fallback_signed(up, "fallback/app")
        seen: dict[str, dict[str, Any]] = {}
        for kind in ("zot", "ocireg"):
            cfg = base_config(tmp_path / f"{kind}-root")
            cfg["extensions"] = {"sync": sync_section(upstream.url, True, True)}
            cfg["extensions"]["sync"]["registries"][0]["content"] = [{"prefix": "fallback/**"}]
            proc = zot_or_ocireg(kind, tmp_path, cfg).start()
            try:
                with httpx.Client(base_url=proc.url, timeout=60) as c:
                    # signed first: the repository exists for the others (see `observe`)
                    refs = ["signed", "unsigned", images["unsigned"].digest]
                    seen[kind] = {}
                    for ref in refs:
                        r = c.get(
                            f"/v2/fallback/app/manifests/{ref}", headers={"Accept": OCI_MANIFEST}
                        )
                        code = r.json()["errors"][0]["code"] if r.is_error else None
                        seen[kind][ref] = (r.status_code, code)
            finally:
                proc.stop()
    assert seen["zot"] == seen["ocireg"]
    assert seen["ocireg"]["signed"] == (200, None)
    assert seen["ocireg"]["unsigned"] == (404, "MANIFEST_UNKNOWN")
