"""zot's lint extension (`extensions.lint.mandatoryAnnotations`): an OCI image manifest is
refused (400 MANIFEST_INVALID) unless each mandatory key is among its annotations or, failing
that, its config's labels. As in zot, the rule is for OCI image manifests only (not Docker
manifests, not indexes) and not for signatures (a `sha256-*.sig` tag, cosign's form, or a
cosign or notation artifact type), which are written by tools that cannot add annotations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ocireg import jsondoc
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError
from ocireg.registry.listing import SIGNATURE_TOOLS
from ocireg.registry.manifests import OCI_MANIFEST, Manifest


def applies(manifest: Manifest, tag: str | None) -> bool:
    """Whether the rule is for this manifest put."""
    if manifest.media_type != OCI_MANIFEST:
        return False
    if tag is not None and tag.startswith("sha256-") and tag.endswith(".sig"):
        return False  # zot's test of a cosign tag: looser than the tag cosign writes
    return manifest.artifact_type not in SIGNATURE_TOOLS


def _member(doc: Any, name: str) -> dict[str, Any]:
    """A map member of a JSON object as Go decodes it into a struct field: the key as
    written, else one that differs only in case (zot reads the config that way)."""
    if not isinstance(doc, dict):
        return {}
    value = doc.get(name)
    if value is None:
        value = next((v for k, v in doc.items() if k.lower() == name.lower()), None)
    return value if isinstance(value, dict) else {}


def missing(
    mandatory: tuple[str, ...] | list[str], annotations: dict[str, Any], labels: dict[str, Any]
) -> list[str]:
    """The mandatory keys neither map has, in the configured order."""
    return [key for key in mandatory if key not in annotations and key not in labels]


async def check(
    mandatory: tuple[str, ...],
    manifest: Manifest,
    digest: Digest,
    reference: str,
    read_config: Callable[[Digest], Awaitable[bytes]],
) -> None:
    """Raise MANIFEST_INVALID naming what `manifest` lacks; `read_config` reads its config
    blob, only when the manifest's own annotations do not have every key."""
    absent = missing(mandatory, manifest.annotations, {})
    if not absent:
        return
    config_digest = manifest.blobs[0]
    try:
        config = jsondoc.loads(await read_config(config_digest))
    except ValueError:
        config = None  # zot answers 500 here; a config that is not JSON has no labels
    labels = _member(_member(config, "config"), "Labels")
    absent = missing(absent, {}, labels)
    if absent:
        # zot's wording, which clients show as it is
        text = (
            f"\nlinter: manifest {digest}\nor config {config_digest}\n"
            f"is missing the next annotations: [{' '.join(absent)}]"
        )
        raise RegistryError(
            ErrorCode.MANIFEST_INVALID,
            detail={"missingAnnotations": text, "reference": reference},
        )
