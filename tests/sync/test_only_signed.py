"""`onlySigned` and `syncLegacyCosignTags` (zot's keys): with `onlySigned`, an upstream image
is copied only if the upstream holds a signature of it (a notation or cosign referrer, or
cosign's legacy `sha256-<hex>.sig` tag while legacy tags count); an unsigned one is skipped,
periodically and on demand (the client gets what is stored: a 404, or the copy stored
before). `syncLegacyCosignTags: false` stops cosign's tags from being copied or counted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.oci import (
    OCI_INDEX,
    OCI_MANIFEST,
    assert_error,
    push_image,
    unique_repo,
)
from tests.support.server import RegistryProcess, base_config, running_registry, wait_until
from tests.sync.conftest import (
    NOTATION_SIGNATURE,
    Upstream,
    mirror,
    push_fallback_signed,
    push_signed_set,
)

ACCEPT = {"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"}
PASS_DONE = "periodic sync done"


def entry(upstream: str, prefix: str, **extra: Any) -> dict[str, Any]:
    return {"urls": [upstream], "content": [{"prefix": prefix}], "onlySigned": True, **extra}


def tags(c: httpx.Client, repo: str) -> list[str]:
    r = c.get(f"/v2/{repo}/tags/list")
    return sorted(r.json().get("tags") or []) if r.status_code == 200 else []


def referrer_types(c: httpx.Client, repo: str, digest: str) -> list[str]:
    r = c.get(f"/v2/{repo}/referrers/{digest}")
    assert r.status_code == 200, r.text
    return sorted(m.get("artifactType") for m in r.json()["manifests"])


def test_on_demand_serves_signed_images_and_404s_the_unsigned(
    ocireg_upstream: RegistryProcess, tmp_path: Path
) -> None:
    repo = unique_repo("ondemand")
    with httpx.Client(base_url=ocireg_upstream.url, timeout=30) as up:
        signed = push_signed_set(up, repo)
    registries = [entry(ocireg_upstream.url, f"{repo}", onDemand=True)]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        for tag in ("notation", "cosign", "legacy"):
            r = c.get(f"/v2/{repo}/manifests/{tag}", headers=ACCEPT)
            assert r.status_code == 200, (tag, r.text)
            assert r.headers["docker-content-digest"] == signed.images[tag].digest
        unsigned = signed.images["unsigned"]
        for ref in ("unsigned", unsigned.digest):
            assert_error(
                c.get(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT), 404, "MANIFEST_UNKNOWN"
            )
            assert c.head(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT).status_code == 404
        assert "image skipped: onlySigned" in proc.logs()
        # A signature is not asked to be signed itself: cosign's tag is served.
        r = c.get(f"/v2/{repo}/manifests/{signed.legacy_tag('.sig')}", headers=ACCEPT)
        assert r.status_code == 200, r.text
        # A stored tag moved upstream to an unsigned image: the stored copy is served, as zot
        # serves what it has when a sync fails.
        with httpx.Client(base_url=ocireg_upstream.url, timeout=30) as up:
            push_image(up, repo, "notation")
        r = c.get(f"/v2/{repo}/manifests/notation", headers=ACCEPT)
        assert r.status_code == 200
        assert r.headers["docker-content-digest"] == signed.images["notation"].digest
        # Skipped, not failed: no upstream failure is reported for it.
        assert "serving the cached copy" not in proc.logs()


def test_a_signature_in_the_referrers_fallback_tag_counts(
    upstream: Upstream, tmp_path: Path
) -> None:
    """docker-registry has no referrers API: the signature is found in the index under the
    fallback tag `sha256-<hex>`."""
    repo = unique_repo("fallback")
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        images = push_fallback_signed(up, repo)
    registries = [entry(upstream.url, repo, onDemand=True)]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        r = c.get(f"/v2/{repo}/manifests/signed", headers=ACCEPT)
        assert r.status_code == 200 and r.content == images["signed"].manifest
        for ref in ("unsigned", images["unsigned"].digest):
            r = c.get(f"/v2/{repo}/manifests/{ref}", headers=ACCEPT)
            assert_error(r, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize(
    ("only_signed", "legacy"),
    [(True, True), (True, False), (False, False)],
    ids=["signed", "signed-no-legacy-tags", "no-legacy-tags"],
)
def test_periodic_copies_what_the_options_allow(
    ocireg_upstream: RegistryProcess, tmp_path: Path, only_signed: bool, legacy: bool
) -> None:
    repo = unique_repo("periodic")
    with httpx.Client(base_url=ocireg_upstream.url, timeout=30) as up:
        signed = push_signed_set(up, repo)
    registries = [
        entry(
            ocireg_upstream.url,
            repo,
            pollInterval="1h",
            onlySigned=only_signed,
            syncLegacyCosignTags=legacy,
        )
    ]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        wait_until(lambda: PASS_DONE in proc.logs(), timeout=60)
        expected = ["cosign", "notation"]  # `.sig` signs `legacy` only while legacy tags count
        if legacy:  # cosign's tags come with their subject
            expected += ["legacy", signed.legacy_tag(".att"), signed.legacy_tag(".sig")]
        if not only_signed:  # zot copies `.att` on its own as an image; `.sig` it does not
            expected += ["legacy", "unsigned", signed.legacy_tag(".att")]
        assert tags(c, repo) == sorted(expected)
        assert referrer_types(c, repo, signed.images["notation"].digest) == [NOTATION_SIGNATURE]
        unsigned = signed.images["unsigned"]
        if only_signed:
            assert referrer_types(c, repo, unsigned.digest) == []
            assert_error(c.get(f"/v2/{repo}/manifests/{unsigned.digest}"), 404, "MANIFEST_UNKNOWN")
        pass_line = next(json.loads(line) for line in proc.logs().splitlines() if PASS_DONE in line)
        assert pass_line.get("errors") == 0, pass_line


def test_a_background_retry_that_reaches_an_unsigned_image_ends_quietly(tmp_path: Path) -> None:
    """An image asked for while the upstream was down is retried behind the error
    (`maxRetries`); when the upstream is back with the image unsigned, the retry skips it as
    a pull would, and stops: nothing is stored and no failure is logged."""
    repo = unique_repo("retry-unsigned")
    up_config = base_config(tmp_path / "up-root", workers=1)
    with (
        running_registry(tmp_path, up_config, name="upstream") as up_server,
        httpx.Client(base_url=up_server.url, timeout=30) as up,
    ):
        push_image(up, repo, "1.0")
    # Down now: the mirror's entry names it anyway, with retries.
    config_entry = entry(up_server.url, repo, onDemand=True, maxRetries=200, retryDelay="100ms")
    with (
        mirror(tmp_path / "mirror", [config_entry], workers=1) as proc,
        httpx.Client(base_url=proc.url, timeout=30) as c,
    ):
        assert_error(c.get(f"/v2/{repo}/manifests/1.0", headers=ACCEPT), 503, "UNAVAILABLE")
        with running_registry(tmp_path, up_config, name="upstream"):
            wait_until(lambda: "image skipped: onlySigned" in proc.logs(), timeout=30)
        assert tags(c, repo) == []
        log = proc.log_path.read_text(errors="replace")
        assert "on-demand retries failed" not in log
        assert "on-demand retry synced" not in log
