"""What a sync asks of the upstream for each image: not the repository's whole tag list, and
not an image it stored already.

An image's cosign and fallback tags (`sha256-<hex>`, `.sig`, `.att`, `.sbom`) are looked up
in the list a periodic pass made once for the repository, and on demand with one HEAD each;
the upstream (a second ocireg, whose access log counts its requests) must see one tag
listing per pass however many tags the pass copies, and none for a pull. A new tag of an
image the pass stored already is tagged from the stored bytes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx

from tests.support.oci import Image, push_artifact, push_image, push_manifest, unique_repo
from tests.support.server import RegistryProcess, wait_until
from tests.sync.conftest import NOTATION_SIGNATURE, mirror

TAGS = 40
LEGACY_SUFFIXES = ("", ".sig", ".att", ".sbom")


def push_tagged(upstream: RegistryProcess, repo: str, prefix: str) -> tuple[Image, str, Image]:
    """An image under TAGS tags `<prefix>0`... of `repo`, and a cosign signature tag of it:
    the image, that tag, the signature."""
    with httpx.Client(base_url=upstream.url, timeout=30) as up:
        image = push_image(up, repo, f"{prefix}0")
        for n in range(1, TAGS):
            assert push_manifest(up, repo, f"{prefix}{n}", image.manifest).status_code == 201
        sig_tag = image.digest.replace(":", "-") + ".sig"
        return image, sig_tag, push_image(up, repo, sig_tag)


def requests_to(upstream: RegistryProcess, repo: str) -> Counter[str]:
    """`METHOD <what>` of each request the upstream logged for `repo` (`tags/list`,
    `manifests/<reference>`, ...)."""
    seen: Counter[str] = Counter()
    for line in upstream.log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # Granian's own lines
        path = record.get("path", "") if isinstance(record, dict) else ""
        if record.get("message") == "request" and path.startswith(f"/v2/{repo}/"):
            seen[f"{record['method']} {path.removeprefix(f'/v2/{repo}/')}"] += 1
    return seen


def test_a_periodic_pass_lists_the_tags_once_however_many_it_copies(
    ocireg_upstream: RegistryProcess, tmp_path: Path
) -> None:
    repo = unique_repo("many")
    image, sig_tag, signature = push_tagged(ocireg_upstream, repo, "t")
    registries = [
        {
            "urls": [ocireg_upstream.url],
            "pollInterval": "1h",  # one pass: the one at start
            "content": [{"prefix": repo}],
        }
    ]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:

        def tags() -> set[str]:
            r = c.get(f"/v2/{repo}/tags/list")
            return set(r.json()["tags"]) if r.status_code == 200 else set()

        wanted = {f"t{n}" for n in range(TAGS)} | {sig_tag}
        wait_until(lambda: tags() == wanted, timeout=60)
        assert c.get(f"/v2/{repo}/manifests/t{TAGS - 1}").content == image.manifest
        assert c.get(f"/v2/{repo}/manifests/{sig_tag}").content == signature.manifest
    asked = requests_to(ocireg_upstream, repo)
    assert asked["GET tags/list"] == 1, asked
    # Each tag's digest is asked for (HEAD), the image itself fetched once, by that digest
    # (the one the pass checked): the other tags name an image stored by then.
    gets = [k for k in asked if k.startswith("GET manifests/t")]
    assert asked[f"GET manifests/{image.digest}"] == 1 and not gets, asked
    assert asked["HEAD manifests/t7"] == 1, asked
    # The fallback tag of the image was looked up in that list, not asked for by name.
    assert not [k for k in asked if k.endswith(f"manifests/{image.digest.replace(':', '-')}")]


def test_a_pull_looks_up_the_cosign_tags_by_name_without_listing(
    ocireg_upstream: RegistryProcess, tmp_path: Path
) -> None:
    repo = unique_repo("pulled")
    image, sig_tag, signature = push_tagged(ocireg_upstream, repo, "v")
    registries = [{"urls": [ocireg_upstream.url], "onDemand": True}]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        assert c.get(f"/v2/{repo}/manifests/v1").content == image.manifest
        # The signature follows the image, behind the answer.
        wait_until(lambda: sig_tag in (c.get(f"/v2/{repo}/tags/list").json().get("tags") or []))
        # One look for each of the image's four tags (the fallback, .sig, .att, .sbom); the
        # upstream logs a request once it has answered, so its log may lag a moment.
        looks = [f"HEAD manifests/{image.digest.replace(':', '-')}{s}" for s in LEGACY_SUFFIXES]
        wait_until(lambda: all(requests_to(ocireg_upstream, repo)[k] for k in looks))
        asked = requests_to(ocireg_upstream, repo)
        assert asked["GET tags/list"] == 0, asked
        assert all(asked[k] == 1 for k in looks), asked
        # (a pull of the signature checks its tag upstream again, as for any tag pulled)
        assert c.get(f"/v2/{repo}/manifests/{sig_tag}").content == signature.manifest


def test_only_signed_asks_for_an_images_referrers_once(
    ocireg_upstream: RegistryProcess, tmp_path: Path
) -> None:
    """The signature check's answer is the copy's list of referrers to copy."""
    repo = unique_repo("signed")
    with httpx.Client(base_url=ocireg_upstream.url, timeout=30) as up:
        image = push_image(up, repo, "v1")
        signature = push_artifact(up, repo, image, NOTATION_SIGNATURE)
    registries = [{"urls": [ocireg_upstream.url], "onDemand": True, "onlySigned": True}]
    with mirror(tmp_path, registries) as proc, httpx.Client(base_url=proc.url, timeout=30) as c:
        assert c.get(f"/v2/{repo}/manifests/v1").content == image.manifest

        def referrers() -> list[str]:
            r = c.get(f"/v2/{repo}/referrers/{image.digest}")
            return [m["digest"] for m in r.json()["manifests"]] if r.status_code == 200 else []

        wait_until(lambda: referrers() == [signature.digest])
    assert requests_to(ocireg_upstream, repo)[f"GET referrers/{image.digest}"] == 1
