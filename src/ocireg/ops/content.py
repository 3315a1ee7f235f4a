"""What garbage collection and scrub both read: the blob files of a repository, their age,
and the digests a manifest names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ocireg import jsondoc
from ocireg.digest import ALGORITHMS, Digest
from ocireg.registry import layout
from ocireg.registry.manifests import MAX_MANIFEST_BYTES
from ocireg.storage import PathNotFound, StorageDriver


@dataclass(frozen=True)
class StoredFile:
    name: str  # a digest
    path: str
    size: int
    # When the file last changed *or got a new name*: a blob mounted from another repository
    # is a hard link that keeps the source's old mtime, but link() renews the inode's ctime.
    stamp: float
    # When its bytes were written: a manifest's push time, as zot reads it from storage.
    written: float = 0.0


async def file_info(driver: StorageDriver, path: str, name: str) -> StoredFile | None:
    """Size and stamp of a blob file (on S3 the stamp is the object's LastModified, which a
    mount's server-side copy renews as a hard link renews the ctime)."""
    try:
        info = await driver.stat(path)
    except PathNotFound:
        return None
    return StoredFile(name, path, info.size, max(info.mtime, info.renamed), info.mtime)


async def list_blobs(
    driver: StorageDriver, repo: str, temporaries: list[str] | None = None
) -> dict[str, StoredFile]:
    """Every blob file of `repo` by digest; stray files (temporaries, odd names) are skipped,
    and the paths of the temporaries (`.<name>.<id>.tmp`, a copy's file before its rename)
    added to `temporaries` when it is given."""
    found: dict[str, StoredFile] = {}
    for algorithm in await list_dir(driver, layout.blobs_dir(repo)):
        alg = algorithm.removesuffix("/")
        if not algorithm.endswith("/") or alg not in ALGORITHMS:
            continue
        for name in await list_dir(driver, f"{layout.blobs_dir(repo)}/{alg}"):
            if name.endswith("/") or not Digest.is_valid(f"{alg}:{name}"):
                if temporaries is not None and name.startswith(".") and name.endswith(".tmp"):
                    temporaries.append(f"{layout.blobs_dir(repo)}/{alg}/{name}")
                continue
            digest = Digest(alg, name)
            info = await file_info(driver, layout.blob(repo, digest), str(digest))
            if info is not None:
                found[str(digest)] = info
    return found


async def list_dir(driver: StorageDriver, path: str) -> list[str]:
    """The names in a directory (directories end in "/"); none when it is absent."""
    try:
        return await driver.list(path)
    except PathNotFound:
        return []


@dataclass(frozen=True)
class References:
    digests: frozenset[str]  # everything the document names: config, layers, children, subject
    manifests: frozenset[str]  # the part of it that is manifests: index entries and subject
    subject: str | None


def references(body: bytes) -> References | None:
    """The digests a manifest names; None when the bytes are not a JSON object.

    Every `digest` field anywhere counts, not only the ones the spec defines: collecting
    less than a manifest references would delete data, collecting more only keeps a blob.
    """
    try:
        doc = jsondoc.loads(body)
    except ValueError:  # UnicodeDecodeError and too deep included
        return None
    if not isinstance(doc, dict):
        return None
    digests: set[str] = set()
    _collect(doc, digests)
    manifests = {d for entry in _list_of(doc.get("manifests")) if (d := _digest_of(entry))}
    subject = _digest_of(doc.get("subject"))
    if subject:
        manifests.add(subject)
    return References(frozenset(digests), frozenset(manifests), subject)


def _collect(node: Any, out: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "digest" and isinstance(value, str) and Digest.is_valid(value):
                out.add(value)
            else:
                _collect(value, out)
    elif isinstance(node, list):
        for item in node:
            _collect(item, out)


def _list_of(node: Any) -> list[Any]:
    return node if isinstance(node, list) else []


def _digest_of(desc: Any) -> str | None:
    if isinstance(desc, dict):
        digest = desc.get("digest")
        if isinstance(digest, str) and Digest.is_valid(digest):
            return digest
    return None


async def read_manifest(driver: StorageDriver, blob: StoredFile) -> bytes | None:
    """A manifest's bytes, or None when it is missing or too large to be one."""
    if blob.size > MAX_MANIFEST_BYTES:
        return None
    try:
        return await driver.get_content(blob.path)
    except PathNotFound:
        return None
