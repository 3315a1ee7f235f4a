"""Build small OCI image layouts on disk, offline, for the client tests.

The images are real enough for podman and buildah to unpack (valid tar layers whose
uncompressed digests are the config's diff_ids), but made of random bytes so that
every test pushes blobs the registry has never seen.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int

    def as_json(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


class Layout:
    """An OCI image layout directory: `oci-layout`, `index.json`, `blobs/sha256/...`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        (path / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
        self.refs: list[dict[str, Any]] = []

    def add_blob(self, data: bytes, media_type: str) -> Descriptor:
        digest = sha256_digest(data)
        (self.path / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(data)
        return Descriptor(media_type, digest, len(data))

    def add_json(self, doc: dict[str, Any], media_type: str) -> Descriptor:
        return self.add_blob(json.dumps(doc, indent=1, sort_keys=True).encode(), media_type)

    def tag(self, desc: Descriptor, tag: str, **extra: Any) -> None:
        self.refs.append(desc.as_json(annotations={REF_NAME: tag}, **extra))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": self.refs}
        (self.path / "index.json").write_text(json.dumps(index, indent=1))


def random_layer(rng: random.Random, files: int = 3, size: int = 64 * 1024) -> bytes:
    """An uncompressed tar of a directory with `files` random regular files."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        top = f"d{rng.getrandbits(32):08x}"
        info = tarfile.TarInfo(top)
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
        for i in range(files):
            body = rng.randbytes(size)
            info = tarfile.TarInfo(f"{top}/file{i}.bin")
            info.size = len(body)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()


def add_image(
    layout: Layout,
    rng: random.Random,
    arch: str = "amd64",
    layers: int = 2,
    gzip_layers: bool = True,
    layer_size: int = 64 * 1024,
) -> tuple[Descriptor, Descriptor]:
    """Write config, layers and manifest of one image; returns (manifest, config)."""
    layer_descs: list[Descriptor] = []
    diff_ids: list[str] = []
    for _ in range(layers):
        tar = random_layer(rng, size=layer_size)
        diff_ids.append(sha256_digest(tar))
        if gzip_layers:
            # mtime=0 keeps the gzip header free of the wall clock.
            layer_descs.append(layout.add_blob(gzip.compress(tar, mtime=0), OCI_LAYER_GZIP))
        else:
            layer_descs.append(layout.add_blob(tar, OCI_LAYER_TAR))
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Labels": {"test.nonce": rng.randbytes(8).hex()}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "ocireg tests"}] * layers,
    }
    config_desc = layout.add_json(config, OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.as_json(),
        "layers": [d.as_json() for d in layer_descs],
    }
    return layout.add_json(manifest, OCI_MANIFEST), config_desc


def build_image_layout(path: Path, tag: str, seed: int, **kwargs: Any) -> Descriptor:
    """A layout holding one tagged image; returns the manifest descriptor."""
    layout = Layout(path)
    manifest, _ = add_image(layout, random.Random(seed), **kwargs)
    layout.tag(manifest, tag)
    return manifest


def build_index_layout(path: Path, tag: str, seed: int, arches: tuple[str, ...]) -> Descriptor:
    """A layout holding a tagged multi-arch index of one image per architecture."""
    layout = Layout(path)
    rng = random.Random(seed)
    children = []
    for arch in arches:
        manifest, _ = add_image(layout, rng, arch=arch, layers=1)
        children.append(manifest.as_json(platform={"architecture": arch, "os": "linux"}))
    index = layout.add_json(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}, OCI_INDEX
    )
    layout.tag(index, tag)
    return index


def read_tagged(path: Path, tag: str) -> dict[str, Any]:
    """The descriptor that a layout's index.json holds for `tag`."""
    index = json.loads((path / "index.json").read_text())
    for desc in index.get("manifests", []):
        if (desc.get("annotations") or {}).get(REF_NAME) == tag:
            return dict(desc)
    raise KeyError(f"{tag} not in {path}/index.json: {index}")
