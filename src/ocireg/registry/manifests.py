"""Manifest parsing and validation: OCI image manifest and index, Docker schema 2 manifest
and manifest list, and artifacts (`artifactType`, `subject`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ocireg import jsondoc
from ocireg.digest import Digest
from ocireg.errors import ErrorCode, RegistryError

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_TYPES = IMAGE_TYPES | INDEX_TYPES
MAX_MANIFEST_BYTES = 4 << 20
# A descriptor's size is an int64 in the image spec (and in zot, which refuses larger ones).
MAX_SIZE = (1 << 63) - 1
# Descriptor and platform fields the image spec types as strings (a descriptor's `data` is a
# base64 string too); what reads a stored manifest later (search, GraphQL, the pages) may
# rely on them being strings.
_DESCRIPTOR_STRINGS = ("artifactType", "data")
_PLATFORM_STRINGS = ("architecture", "os", "os.version", "variant")

# Layers that live elsewhere by design: their blobs are never pushed to the registry.
_FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


@dataclass(frozen=True)
class Manifest:
    media_type: str
    blobs: tuple[Digest, ...]  # config and layers: must exist in the repository
    children: tuple[Digest, ...]  # manifests an index points to: must exist too
    subject: Digest | None
    artifact_type: str | None  # declared, else (image manifests) the config media type
    declared_artifact_type: str | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _invalid(message: str, detail: Any = None) -> RegistryError:
    return RegistryError(ErrorCode.MANIFEST_INVALID, message, detail)


def _is_string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(isinstance(v, str) for v in value.values())


def _is_string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _check_types(desc: dict[str, Any], where: str) -> None:
    """The optional descriptor fields, typed as the image spec has them (null: absent)."""
    for key in _DESCRIPTOR_STRINGS:
        if desc.get(key) is not None and not isinstance(desc[key], str):
            raise _invalid(f"{where}.{key} must be a string")
    if desc.get("annotations") is not None and not _is_string_map(desc["annotations"]):
        raise _invalid(f"{where}.annotations must be a map of strings")
    if desc.get("urls") is not None and not _is_string_list(desc["urls"]):
        raise _invalid(f"{where}.urls must be a list of strings")
    platform = desc.get("platform")
    if platform is None:
        return
    if not isinstance(platform, dict):
        raise _invalid(f"{where}.platform must be an object")
    for key in _PLATFORM_STRINGS:
        if platform.get(key) is not None and not isinstance(platform[key], str):
            raise _invalid(f"{where}.platform.{key} must be a string")
    features = platform.get("os.features")
    if features is not None and not _is_string_list(features):
        raise _invalid(f"{where}.platform.os.features must be a list of strings")


def _descriptor_digest(desc: Any, where: str) -> Digest:
    if not isinstance(desc, dict):
        raise _invalid(f"{where} is not a descriptor")
    digest = desc.get("digest")
    size = desc.get("size")
    if not isinstance(digest, str):
        raise _invalid(f"{where}.digest is missing")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
        raise _invalid(f"{where}.size is missing, negative or past int64")
    if not isinstance(desc.get("mediaType"), str):
        raise _invalid(f"{where}.mediaType is missing")
    _check_types(desc, where)
    try:
        return Digest.parse(digest)
    except RegistryError:
        raise _invalid(f"{where}.digest is not a valid digest", {"digest": digest[:200]}) from None


def parse_manifest(body: bytes, content_type: str | None, stored: bool = False) -> Manifest:
    """Validate a pushed manifest; the media type is the request's, else the body's.
    `stored`: one already in storage, read for what it says (`parse_stored`)."""
    try:
        # UTF-8 only, without a byte-order mark, as JSON on the wire must be (RFC 8259):
        # json.loads of bytes would also take UTF-16 and UTF-32, which other clients cannot read
        doc = jsondoc.loads(body.decode("utf-8"))
    except ValueError as exc:  # not JSON, not UTF-8, or nested past jsondoc.MAX_DEPTH
        raise _invalid("manifest is not valid JSON", str(exc)) from None
    if not isinstance(doc, dict):
        raise _invalid("manifest is not a JSON object")
    version = doc.get("schemaVersion")
    if type(version) is not int or version != 2:  # not 2.0, which compares equal
        raise _invalid("only schemaVersion 2 manifests are supported")
    body_type = doc.get("mediaType")
    if body_type is not None and not isinstance(body_type, str):
        raise _invalid("mediaType must be a string")
    ctype = (content_type or "").split(";")[0].strip()
    if ctype in MANIFEST_TYPES and body_type and body_type != ctype:
        raise _invalid("mediaType in the body differs from Content-Type", {"mediaType": body_type})
    media_type = ctype if ctype in MANIFEST_TYPES else body_type
    if media_type is None:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if media_type not in MANIFEST_TYPES:
        raise _invalid("unsupported manifest media type", {"mediaType": media_type})

    blobs: list[Digest] = []
    children: list[Digest] = []
    if media_type in IMAGE_TYPES:
        if "config" not in doc:
            raise _invalid("image manifest has no config")
        blobs.append(_descriptor_digest(doc["config"], "config"))
        if "layers" not in doc and not stored:  # the image spec's schema requires it, as
            raise _invalid("image manifest has no layers")  # zot checks; [] is fine
        layers = doc.get("layers", [])
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, layer in enumerate(layers):
            digest = _descriptor_digest(layer, f"layers[{i}]")
            if layer.get("mediaType") not in _FOREIGN_LAYER_TYPES:
                blobs.append(digest)
    else:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("index has no manifests list")
        for i, entry in enumerate(entries):
            children.append(_descriptor_digest(entry, f"manifests[{i}]"))

    subject = None
    if doc.get("subject") is not None:
        subject = _descriptor_digest(doc["subject"], "subject")
    declared = doc.get("artifactType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("artifactType must be a string")
    artifact_type = declared
    if artifact_type is None and media_type in IMAGE_TYPES:
        config_type = doc["config"].get("mediaType")
        artifact_type = config_type if isinstance(config_type, str) else None
    annotations = doc.get("annotations")
    if annotations is None:
        annotations = {}
    elif not _is_string_map(annotations):
        raise _invalid("annotations must be a map of strings")
    return Manifest(
        media_type=media_type,
        blobs=tuple(blobs),
        children=tuple(children),
        subject=subject,
        artifact_type=artifact_type,
        declared_artifact_type=declared,
        annotations=annotations,
    )


def parse_stored(body: bytes, media_type: str | None) -> Manifest | None:
    """Best-effort parse of a manifest already in storage (zot roots may hold odd ones)."""
    try:
        return parse_manifest(body, media_type, stored=True)
    except RegistryError:
        return None
