"""index.json of a repository: read (cached per process), and updated under the repo lock.

Every stored manifest has a descriptor here; a tag is the `org.opencontainers.image.ref.name`
annotation of one descriptor. A manifest without a tag keeps a descriptor without it, so it
stays reachable by digest until garbage collection removes it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ocireg import jsondoc
from ocireg.registry import layout
from ocireg.storage import FileInfo, PathNotFound, StorageDriver, StorageUnavailable

REF_NAME = "org.opencontainers.image.ref.name"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
UPDATE_ATTEMPTS = 50  # conditional-write retries; each loser re-reads and re-applies


@dataclass
class Index:
    manifests: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # keys we do not interpret, kept as is

    @classmethod
    def parse(cls, data: bytes) -> Index:
        doc = jsondoc.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("index.json is not a JSON object")
        manifests = [m for m in doc.pop("manifests", None) or [] if isinstance(m, dict)]
        return cls(manifests=manifests, extra=doc)

    def dump(self) -> bytes:
        doc = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, **self.extra}
        doc["manifests"] = self.manifests
        return json.dumps(doc, separators=(",", ":")).encode()

    def by_tag(self, tag: str) -> dict[str, Any] | None:
        for desc in self.manifests:
            if tag_of(desc) == tag:
                return desc
        return None

    def by_digest(self, digest: str) -> dict[str, Any] | None:
        for desc in self.manifests:
            if desc.get("digest") == digest:
                return desc
        return None

    def tags(self) -> list[str]:
        return sorted({t for d in self.manifests if (t := tag_of(d))})

    def digests(self) -> list[str]:
        seen: dict[str, None] = {}
        for desc in self.manifests:
            if isinstance(desc.get("digest"), str):
                seen[desc["digest"]] = None
        return list(seen)

    def set_tag(self, tag: str, desc: dict[str, Any]) -> None:
        """Point `tag` at `desc`; a manifest that loses its last tag stays, untagged."""
        old = self.by_tag(tag)
        if old is not None:
            self.manifests.remove(old)
            old_digest = old.get("digest")
            if (
                isinstance(old_digest, str)
                and old_digest != desc["digest"]
                and self.by_digest(old_digest) is None
            ):
                untagged = {k: v for k, v in old.items() if k != "annotations"}
                rest = {k: v for k, v in (old.get("annotations") or {}).items() if k != REF_NAME}
                if rest:
                    untagged["annotations"] = rest
                self.manifests.append(untagged)
        # An untagged descriptor of the same digest is replaced by the tagged one.
        self.manifests = [
            d for d in self.manifests if not (d.get("digest") == desc["digest"] and not tag_of(d))
        ]
        self.manifests.append(
            {**desc, "annotations": {**(desc.get("annotations") or {}), REF_NAME: tag}}
        )

    def add_untagged(self, desc: dict[str, Any]) -> None:
        if self.by_digest(desc["digest"]) is None:
            self.manifests.append(desc)

    def remove_tag(self, tag: str) -> bool:
        """Remove the tag; its manifest stays reachable by digest."""
        old = self.by_tag(tag)
        if old is None:
            return False
        self.manifests.remove(old)
        if self.by_digest(old["digest"]) is None:
            self.manifests.append({k: v for k, v in old.items() if k != "annotations"})
        return True

    def remove_digest(self, digest: str) -> bool:
        before = len(self.manifests)
        self.manifests = [d for d in self.manifests if d.get("digest") != digest]
        return len(self.manifests) != before


def tag_of(desc: dict[str, Any]) -> str | None:
    annotations = desc.get("annotations")
    if isinstance(annotations, dict):
        tag = annotations.get(REF_NAME)
        if isinstance(tag, str):
            return tag
    return None


class IndexCache:
    """Parsed index.json per repository, reused while the file's version is unchanged."""

    def __init__(self, driver: StorageDriver, max_entries: int = 4096) -> None:
        self.driver = driver
        self.max_entries = max_entries
        self._cache: dict[str, tuple[str, Index]] = {}

    async def load(self, repo: str) -> Index | None:
        """The repository's index, or None when the repository does not exist."""
        path = layout.index(repo)
        try:
            info: FileInfo = await self.driver.stat(path)
        except PathNotFound:
            self._cache.pop(repo, None)
            return None
        key = info.version or f"{info.size}-{info.mtime}"
        hit = self._cache.get(repo)
        if hit is not None and hit[0] == key:
            return hit[1]
        try:
            index = Index.parse(await self.driver.get_content(path))
        except PathNotFound:
            return None
        if len(self._cache) >= self.max_entries:
            self._cache.pop(next(iter(self._cache)))
        self._cache[repo] = (key, index)
        return index

    async def update(self, repo: str, change: Callable[[Index], Any]) -> Any:
        """Read a fresh copy, apply `change`, write it back if nobody else wrote meanwhile
        (a conditional write; on disk the caller's file lock makes it so), else start over."""
        path = layout.index(repo)
        for _ in range(UPDATE_ATTEMPTS):
            version: str | None
            try:
                data, version = await self.driver.get_versioned(path)
                index = Index.parse(data)
            except PathNotFound:
                index, version = Index(), None
            result = change(index)
            written = await self.driver.put_if(path, index.dump(), version)
            self._cache.pop(repo, None)
            if written:
                return result
        raise StorageUnavailable(f"{path}: too many concurrent writers, gave up")
