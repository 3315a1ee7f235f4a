"""`onlySigned` and `syncLegacyCosignTags`: which upstream images count as signed, and which
tags are cosign's or the referrers fallback's. The rules are zot v2.1.20's, looseness
included (its tag tests are unanchored regular expressions), so that the same upstream gives
the same mirror:

- an image is signed when the upstream lists a signature among its referrers (a descriptor
  with notation's or cosign's artifact type, or whose `org.opencontainers.image.ref.name`
  is a cosign signature tag), or, with legacy cosign tags on, when the repository has the
  tag `sha256-<hex>.sig` for it;
- a reference that is itself a cosign signature tag or a referrers fallback tag is never
  asked for a signature (a signature is not signed).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Collection, Sequence
from typing import Any

from ocireg.digest import Digest
from ocireg.registry.listing import SIGNATURE_TOOLS
from ocireg.sync.settings import RegistrySettings
from ocireg.sync.upstream import Upstream, UpstreamMissing, index_descriptors

REF_NAME = "org.opencontainers.image.ref.name"
# zot's tests, searched anywhere in the tag (Go's MatchString), not matched whole.
_COSIGN_SIGNATURE = re.compile(r"sha256-.+\.sig")
_COSIGN_SBOM = re.compile(r"sha256-.+\.sbom")
_REFERRERS_TAG = re.compile(r"sha256-[A-Za-z0-9]*$")
_SUBJECT = re.compile(r"sha256-([0-9a-f]{64})(?![0-9A-Za-z])")


class UpstreamUnsigned(UpstreamMissing):
    """`onlySigned` and the upstream has no signature of the image: skipped, as not there."""


def is_cosign_signature(tag: str) -> bool:
    return _COSIGN_SIGNATURE.search(tag) is not None


def is_cosign_tag(tag: str) -> bool:
    """cosign's signature or SBOM tag (not `.att`: zot treats that as an image)."""
    return is_cosign_signature(tag) or _COSIGN_SBOM.search(tag) is not None


def is_referrers_tag(tag: str) -> bool:
    """The referrers fallback tag, `sha256-<hex>`."""
    return _REFERRERS_TAG.search(tag) is not None


def needs_signature(settings: RegistrySettings, reference: str) -> bool:
    return (
        settings.only_signed
        and not is_cosign_signature(reference)
        and not is_referrers_tag(reference)
    )


def legacy_tag(subject: Digest, suffix: str) -> str:
    """cosign's tag for `subject`: `sha256-<hex>` and a suffix (`.sig`, `.att`, `.sbom`)."""
    return f"{subject.algorithm}-{subject.hex}{suffix}"


def legacy_subject(tag: str) -> Digest | None:
    """The digest a cosign or fallback tag names (`sha256-<hex>...`), if it names one."""
    match = _SUBJECT.match(tag)
    return Digest.parse(f"sha256:{match.group(1)}") if match else None


def is_signature(descriptor: dict[str, Any]) -> bool:
    annotations = descriptor.get("annotations")
    name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
    if isinstance(name, str) and is_cosign_signature(name):
        return True
    artifact_type = descriptor.get("artifactType")  # the upstream's JSON: any type
    return isinstance(artifact_type, str) and artifact_type in SIGNATURE_TOOLS


async def is_signed(
    upstream: Upstream, remote: str, digest: Digest, tags: Collection[str] | None = None
) -> tuple[bool, list[dict[str, Any]] | None]:
    """Whether the upstream holds a signature of `remote@digest`, and its referrers API's
    answer (None: it has no such API), which the copy of a signed image takes rather than
    asking again. `tags`: the repository's tags when the caller has them (see
    `present_tags`)."""
    listed = await upstream.referrers(remote, digest)
    found = listed if listed is not None else await _fallback_referrers(upstream, remote, digest)
    if any(is_signature(d) for d in found):
        return True, listed
    if not upstream.settings.legacy_cosign_tags:
        return False, listed
    signed = bool(await present_tags(upstream, remote, [legacy_tag(digest, ".sig")], tags))
    return signed, listed


async def present_tags(
    upstream: Upstream, remote: str, wanted: Sequence[str], tags: Collection[str] | None
) -> list[str]:
    """Which of `wanted` (in their order) the upstream repository has: looked up in `tags`,
    the repository's tags, when the caller listed them; else one HEAD each, at once. Listing
    the tags instead would cost as much as the repository has of them, for every image
    copied: a periodic pass over a repository of many tags would list them all once per tag.
    (zot v2.1.20 keeps each repository's list for 30 minutes instead, so that a pull may miss
    a signature tag pushed meanwhile; a HEAD each keeps the answer current.)"""
    if tags is not None:
        return [tag for tag in wanted if tag in tags]

    async def present(tag: str) -> bool:
        try:
            await upstream.manifest_digest(remote, tag)
        except UpstreamMissing:
            return False
        return True

    # All answered before any failure is raised (as itself, the caller's UpstreamError).
    looks = await asyncio.gather(*map(present, wanted), return_exceptions=True)
    for look in looks:
        if isinstance(look, BaseException):
            raise look
    return [tag for tag, look in zip(wanted, looks, strict=True) if look]


async def _fallback_referrers(
    upstream: Upstream, remote: str, digest: Digest
) -> list[dict[str, Any]]:
    """For a registry without the referrers API: the index under the fallback tag
    `sha256-<hex>`, as OCI clients keep it."""
    try:
        fallback = await upstream.manifest(remote, legacy_tag(digest, ""))
    except UpstreamMissing:
        return []
    return index_descriptors(fallback.body) or []
