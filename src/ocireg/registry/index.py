"""index.json of a repository: read (cached per process), and updated under the repo lock.

Every stored manifest has a descriptor here; a tag is the `org.opencontainers.image.ref.name`
annotation of one descriptor. A manifest without a tag keeps a descriptor without it, so it
stays reachable by digest until garbage collection removes it.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ocireg import jsondoc
from ocireg.meta import MetaStore, MetaUnavailable
from ocireg.registry import layout
from ocireg.registry.versions import IndexVersions, version_of
from ocireg.storage import Draft, FileInfo, PathNotFound, StorageDriver, StorageUnavailable

log = logging.getLogger("ocireg.registry")

REF_NAME = "org.opencontainers.image.ref.name"
# Set on the descriptor of an untagged manifest that garbage collection must keep: one that
# sync fetched because a client pulled it by digest (docs/sync.md, "Pulled by digest").
KEEP = "io.ocireg.keep"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
UPDATE_ATTEMPTS = 50  # conditional-write retries; each loser re-reads and re-applies


class Index:
    """The descriptors of index.json, in file order, looked up by tag and by digest in O(1).

    Each descriptor is kept with its JSON text, made once, and the texts of the older
    entries are kept together in one bytes object (`_Text`): writing the index back hands
    the storage a few pieces of it, which the filesystem writes with `writev`, so a tag
    write neither re-serializes nor re-joins thousands of entries (docs/performance.md, "Tag
    writes"). Entries are keyed `t:<tag>` or, untagged, `d:<digest>`; descriptors are never
    changed in place, so copies share them.
    """

    __slots__ = ("__weakref__", "_count", "_entries", "_first", "_tags", "_text", "extra")

    def __init__(
        self, manifests: Iterable[dict[str, Any]] = (), extra: dict[str, Any] | None = None
    ) -> None:
        self.extra: dict[str, Any] = extra or {}  # keys we do not interpret, kept as is
        self._entries: dict[str, dict[str, Any]] = {}
        self._first: dict[str, str] = {}  # digest -> key of its first entry
        self._count: dict[str, int] = {}  # digest -> number of entries
        self._tags: list[str] | None = None  # sorted, made on demand
        # The entries' texts; None until the first write after a parse (a reader that never
        # writes does not pay for serializing thousands of entries).
        self._text: _Text | None = None
        for desc in manifests:
            self._add(desc)

    @classmethod
    def parse(cls, data: bytes) -> Index:
        doc = jsondoc.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("index.json is not a JSON object")
        manifests = [m for m in doc.pop("manifests", None) or [] if isinstance(m, dict)]
        return cls(manifests, extra=doc)

    def copy(self) -> Index:
        """A copy to change while readers keep this one (dict copies, shared descriptors)."""
        other = Index.__new__(Index)
        other.extra = dict(self.extra)
        other._entries = self._entries.copy()
        other._first = self._first.copy()
        other._count = self._count.copy()
        other._tags = self._tags
        other._text = None if self._text is None else self._text.copy()
        return other

    def dump(self) -> bytes:
        return b"".join(self.pieces())

    def pieces(self) -> list[bytes | memoryview]:
        """The file's bytes in pieces, in order (mostly views of the kept text: no copy)."""
        return [self._head(), *self._texts().pieces(), b"]}"]

    def begin(self) -> tuple[Mark, list[bytes | memoryview]] | None:
        """The file's bytes up to the end of its last entry and the comma after it: the
        beginning of the next version if that only adds entries (`after`). None for an
        index without entries."""
        if not self._entries:
            return None
        head, text = self._head(), self._texts()
        pieces = [head, *text.pieces(last_comma=True)]
        return Mark(text.lineage, text.removed, len(self._entries), head), pieces

    def after(self, mark: Mark) -> list[bytes | memoryview] | None:
        """The rest of the file after `begin`'s bytes, if since `mark` this index (or the
        one it was copied from) only had entries added; None otherwise."""
        text, added = self._text, len(self._entries) - mark.entries
        if (
            text is None
            or (text.lineage, text.removed) != (mark.lineage, mark.removed)
            or not 0 < added <= text.unjoined()
            or self._head() != mark.head
        ):
            return None
        return [*text.last(added), b"]}"]

    def _head(self) -> bytes:
        head = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, **self.extra}
        head.pop("manifests", None)
        return _compact(head)[:-1] + b',"manifests":['

    def _texts(self) -> _Text:
        if self._text is None:  # after a parse: serialize every entry once, in file order
            self._text = _Text.of(self._entries)
        return self._text

    @property
    def manifests(self) -> list[dict[str, Any]]:
        return list(self._entries.values())

    @manifests.setter
    def manifests(self, descriptors: list[dict[str, Any]]) -> None:
        keep = {id(d) for d in descriptors}
        for key in [k for k, d in self._entries.items() if id(d) not in keep]:
            self._remove(key)

    # --- reading ---------------------------------------------------------------------------

    def by_tag(self, tag: str) -> dict[str, Any] | None:
        return self._entries.get(f"t:{tag}")

    def by_digest(self, digest: str) -> dict[str, Any] | None:
        key = self._first.get(digest)
        return None if key is None else self._entries[key]

    def tags(self) -> list[str]:
        """Sorted; made once per index (an index is copied, never changed, once cached)."""
        if self._tags is None:
            self._tags = sorted({t for d in self._entries.values() if (t := tag_of(d))})
        return self._tags

    def digests(self) -> list[str]:
        return list(self._count)

    def __len__(self) -> int:
        return len(self._entries)

    # --- changing --------------------------------------------------------------------------

    def set_tag(self, tag: str, desc: dict[str, Any]) -> None:
        """Point `tag` at `desc`; a manifest that loses its last tag stays, untagged."""
        old = self._remove(f"t:{tag}")
        if old is not None:
            old_digest = old.get("digest")
            if (
                isinstance(old_digest, str)
                and old_digest != desc["digest"]
                and old_digest not in self._count
            ):
                self._add(_untagged(old))
        # An untagged descriptor of the same digest is replaced by the tagged one; its
        # annotations (a `KEEP`) stay with it, and with the untagged entry if the tag moves.
        before = self._remove(f"d:{desc['digest']}") or {}
        annotations = {**(before.get("annotations") or {}), **(desc.get("annotations") or {})}
        self._add({**desc, "annotations": {**annotations, REF_NAME: tag}})

    def add_untagged(self, desc: dict[str, Any]) -> None:
        if desc["digest"] not in self._count:
            self._add(desc)

    def remove_tag(self, tag: str) -> bool:
        """Remove the tag; its manifest stays reachable by digest."""
        old = self._remove(f"t:{tag}")
        if old is None:
            return False
        if old.get("digest") not in self._count:
            self._add({k: v for k, v in old.items() if k != "annotations"})
        return True

    def remove_digest(self, digest: str) -> bool:
        keys = [k for k, d in self._entries.items() if d.get("digest") == digest]
        for key in keys:
            self._remove(key)
        return bool(keys)

    # --- internals -------------------------------------------------------------------------

    def _add(self, desc: dict[str, Any]) -> None:
        tag = tag_of(desc)
        digest = desc.get("digest")
        key = f"t:{tag}" if tag is not None else f"d:{digest}"
        if key in self._entries:  # a second entry with the same tag or digest: keep both
            n = 1
            while f"{key}#{n}" in self._entries:
                n += 1
            key = f"{key}#{n}"
        self._tags = None
        self._entries[key] = desc
        if self._text is not None:
            self._text.add(key, desc)
        if isinstance(digest, str):
            self._count[digest] = self._count.get(digest, 0) + 1
            self._first.setdefault(digest, key)

    def _remove(self, key: str) -> dict[str, Any] | None:
        desc = self._entries.pop(key, None)
        if desc is None:
            return None
        self._tags = None
        if self._text is not None:
            self._text.remove(key)
        digest = desc.get("digest")
        if isinstance(digest, str):
            left = self._count[digest] - 1
            if left:
                self._count[digest] = left
                if self._first[digest] == key:  # another entry of this digest comes first now
                    self._first[digest] = next(
                        k for k, d in self._entries.items() if d.get("digest") == digest
                    )
            else:
                del self._count[digest]
                del self._first[digest]
        return desc


@dataclass(frozen=True)
class Mark:
    """What `Index.begin` wrote from: `Index.after` compares it with the index then."""

    lineage: object
    removed: int
    entries: int
    head: bytes


class _Text:
    """The JSON texts of an index's entries, in file order, each followed by a comma.

    Most of them sit in one bytes object (`_body`), where `_spans` says which bytes are
    whose; entries added since are kept apart (`_tail`), and a removed entry of the body
    leaves a hole there (`_holes`) rather than a copy of the rest. The entries of the file
    are then the body without its holes, followed by the tail: a few pieces, whatever the
    number of entries. Every FOLD_AT additions, or HOLES_MAX holes, the pieces are joined
    into a new body (one copy, its cost spread over those writes).

    Entries are added at the end and removed anywhere, as `Index._entries` (a dict, in
    insertion order): the order here stays the same as there.
    """

    __slots__ = ("_body", "_holes", "_spans", "_tail", "lineage", "removed")

    FOLD_AT = 128  # tail entries (and so writev pieces) before they are joined into the body
    HOLES_MAX = 32

    def __init__(self) -> None:
        self._body = b""
        self._spans: dict[str, tuple[int, int]] = {}  # key -> (start, end) in `_body`
        self._holes: list[tuple[int, int]] = []  # spans of removed entries, in any order
        self._tail: dict[str, bytes] = {}  # key -> text and comma, added since the join
        # Shared with the copies, and `removed` counted in each: a `Mark` of one of them
        # then tells whether the entries it saw are still the first ones (`Index.after`).
        self.lineage = object()
        self.removed = 0

    @classmethod
    def of(cls, entries: dict[str, dict[str, Any]]) -> _Text:
        text = cls()
        text._tail = {key: _compact(desc) + b"," for key, desc in entries.items()}
        text._join()
        return text

    def copy(self) -> _Text:
        other = _Text.__new__(_Text)
        other._body = self._body  # bytes: shared, never changed
        other._spans = self._spans.copy()
        other._holes = self._holes.copy()
        other._tail = self._tail.copy()
        other.lineage, other.removed = self.lineage, self.removed
        return other

    def add(self, key: str, desc: dict[str, Any]) -> None:
        self._tail[key] = _compact(desc) + b","

    def remove(self, key: str) -> None:
        self.removed += 1
        if self._tail.pop(key, None) is None and (span := self._spans.pop(key, None)):
            self._holes.append(span)

    def unjoined(self) -> int:
        """How many of the last entries are kept apart from the body (`last` gives them)."""
        return len(self._tail)

    def last(self, count: int) -> list[bytes | memoryview]:
        """The texts of the last `count` entries (at most `unjoined`), the last without
        its comma."""
        texts: list[bytes | memoryview] = list(
            itertools.islice(reversed(self._tail.values()), count)
        )
        texts.reverse()
        texts[-1] = memoryview(texts[-1])[:-1]
        return texts

    def pieces(self, last_comma: bool = False) -> list[bytes | memoryview]:
        """The entries' texts joined by commas, in pieces (`last_comma`: and one after the
        last)."""
        if len(self._tail) >= self.FOLD_AT or len(self._holes) > self.HOLES_MAX:
            self._join()
        body = memoryview(self._body)
        pieces: list[bytes | memoryview] = []
        at = 0
        for start, end in sorted(self._holes):
            if start > at:
                pieces.append(body[at:start])
            at = end
        if at < len(body):
            pieces.append(body[at:])
        pieces.extend(self._tail.values())
        if pieces and not last_comma:
            pieces[-1] = memoryview(pieces[-1])[:-1]
        return pieces

    def _join(self) -> None:
        """One body of every entry, without holes."""
        texts: list[tuple[str, bytes | memoryview]]
        parts: list[bytes | memoryview]
        if self._holes:  # a hole moves what follows it: every span is counted again
            body = memoryview(self._body)
            texts = [(key, body[start:end]) for key, (start, end) in self._spans.items()]
            self._spans, self._holes, parts, at = {}, [], [], 0
        else:
            texts, parts, at = [], [self._body], len(self._body)
        texts.extend(self._tail.items())
        for key, text in texts:
            self._spans[key] = (at, at + len(text))
            parts.append(text)
            at += len(text)
        self._body = b"".join(parts)
        self._tail = {}


def _compact(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def _untagged(desc: dict[str, Any]) -> dict[str, Any]:
    """`desc` without its tag annotation (other annotations stay)."""
    untagged = {k: v for k, v in desc.items() if k != "annotations"}
    rest = {k: v for k, v in (desc.get("annotations") or {}).items() if k != REF_NAME}
    if rest:
        untagged["annotations"] = rest
    return untagged


def is_kept(desc: dict[str, Any]) -> bool:
    """Whether an untagged descriptor is one garbage collection keeps (`KEEP`)."""
    annotations = desc.get("annotations")
    return isinstance(annotations, dict) and KEEP in annotations


def tag_of(desc: dict[str, Any]) -> str | None:
    annotations = desc.get("annotations")
    if isinstance(annotations, dict):
        tag = annotations.get(REF_NAME)
        if isinstance(tag, str):
            return tag
    return None


class IndexChange(abc.ABC):
    """A change to an index that can be written down (the metadata store's journal) and
    replayed by another process on its cached copy, instead of re-reading the whole file."""

    @abc.abstractmethod
    def __call__(self, index: Index) -> Any: ...

    @abc.abstractmethod
    def journal(self) -> list[Any]: ...


@dataclass(frozen=True)
class SetTag(IndexChange):
    tag: str
    desc: dict[str, Any]

    def __call__(self, index: Index) -> None:
        index.set_tag(self.tag, self.desc)

    def journal(self) -> list[Any]:
        return ["set_tag", self.tag, self.desc]


@dataclass(frozen=True)
class AddUntagged(IndexChange):
    desc: dict[str, Any]

    def __call__(self, index: Index) -> None:
        index.add_untagged(self.desc)

    def journal(self) -> list[Any]:
        return ["add_untagged", self.desc]


@dataclass(frozen=True)
class RemoveTag(IndexChange):
    tag: str

    def __call__(self, index: Index) -> bool:
        return index.remove_tag(self.tag)

    def journal(self) -> list[Any]:
        return ["remove_tag", self.tag]


@dataclass(frozen=True)
class RemoveDigest(IndexChange):
    digest: str

    def __call__(self, index: Index) -> bool:
        return index.remove_digest(self.digest)

    def journal(self) -> list[Any]:
        return ["remove_digest", self.digest]


@dataclass(frozen=True)
class Batch(IndexChange):
    """Several changes written at once; the result is the list of their results."""

    changes: list[IndexChange]

    def __call__(self, index: Index) -> list[Any]:
        return [change(index) for change in self.changes]

    def journal(self) -> list[Any]:
        return ["batch", [change.journal() for change in self.changes]]


def change_from_journal(entry: Any) -> IndexChange | None:
    """The change a journal entry names; None for anything else (then: read the file)."""
    match entry:
        case ["batch", list(entries)]:
            changes = [change_from_journal(e) for e in entries]
            if all(c is not None for c in changes):
                return Batch([c for c in changes if c is not None])
            return None
        case ["set_tag", str(tag), dict(desc)] if isinstance(desc.get("digest"), str):
            return SetTag(tag, desc)
        case ["add_untagged", dict(desc)] if isinstance(desc.get("digest"), str):
            return AddUntagged(desc)
        case ["remove_tag", str(tag)]:
            return RemoveTag(tag)
        case ["remove_digest", str(digest)]:
            return RemoveDigest(digest)
    return None


@dataclass
class IndexDraft:
    """A write of an index begun from its cached version (`IndexCache.draft`)."""

    version: str
    mark: Mark
    file: Draft


class IndexCache:
    """Parsed index.json per repository, reused while the file's version is unchanged.

    A cached index is used only when its version is known to be the current one: never
    trusted by age, so a change made by another process or member is seen at once. The
    current version comes from the metadata store's index-version key where every writer
    keeps it (`IndexVersions`, S3 with a shared store: no request to storage), else from
    `stat`. When another process changed the file, its changes are replayed from the
    metadata store's journal if they lead from our version to the current one; otherwise
    the file is read again. The journal and the key only save work: the file stays the truth.
    """

    def __init__(
        self,
        driver: StorageDriver,
        meta: MetaStore,
        max_entries: int = 4096,
        keep_versions: bool = False,
    ) -> None:
        self.driver = driver
        self.meta = meta
        self.max_entries = max_entries
        self.versions = IndexVersions(meta, keep_versions)
        self._cache: dict[str, tuple[str, Index]] = {}
        # Repositories whose cached index no caller of `load` has been given: the next
        # change may then be made on it in place rather than on a copy (a copy costs
        # milliseconds at 10,000 tags; docs/performance.md, "Tag writes").
        self._unseen: set[str] = set()

    def entries(self, repo: str) -> int:
        """How many descriptors the cached index of `repo` has (0 when none is cached);
        not necessarily the current count."""
        found = self._cache.get(repo)
        return 0 if found is None else len(found[1])

    async def load(self, repo: str) -> Index | None:
        """The repository's index, or None when the repository does not exist."""
        found = await self._current(repo)
        if found is None:
            return None
        self._unseen.discard(repo)
        return found[1]

    async def lists(self, repo: str, digest: str) -> bool:
        """Whether the repository's index lists `digest` now. Unlike `load`, the index is
        not handed out, so the next change may still be made in place (`_own`)."""
        found = await self._current(repo)
        return found is not None and found[1].by_digest(digest) is not None

    async def points(self, repo: str, tag: str | None, digest: str) -> bool:
        """Whether the index has this already: `tag` on `digest`, or (no tag) `digest`
        listed. Like `lists`, hands nothing out."""
        found = await self._current(repo)
        if found is None:
            return False
        desc = found[1].by_tag(tag) if tag is not None else found[1].by_digest(digest)
        return desc is not None and desc.get("digest") == digest

    async def size(self, repo: str) -> int | None:
        """How many descriptors the repository's index lists now; None when there is no
        repository. Like `lists`, hands nothing out."""
        found = await self._current(repo)
        return None if found is None else len(found[1])

    async def _current(self, repo: str) -> tuple[str, Index] | None:
        """(version, index) as stored now; None when there is no index.json."""
        if not self.versions.usable():
            return await self._stored(repo)
        try:
            seen = await self.versions.read(repo)
        except MetaUnavailable:
            return await self._stored(repo)
        version = version_of(seen)
        if version is not None:
            current = await self._cached_at(repo, version)
            if current is not None:
                return current  # the common case: no request to storage
            found = await self._read(repo)
            if found is not None and found[0] == version:
                return found
        return await self._healed(repo, seen)

    async def _healed(self, repo: str, seen: str | None) -> tuple[str, Index] | None:
        """Storage's answer, read after claiming the key that said nothing useful (`seen`),
        and the key set to it if nobody touched the key meanwhile (registry/versions.py)."""
        try:
            token = await self.versions.claim(repo, seen)
        except MetaUnavailable:
            token = None
        found = await self._stored(repo)
        if token is not None and found is not None:
            # If the store fails here the key keeps our token: readers ask storage meanwhile.
            with contextlib.suppress(MetaUnavailable):
                await self.versions.heal(repo, token, found[0])
        return found

    async def _stored(self, repo: str) -> tuple[str, Index] | None:
        """(version, index) as `stat` finds it: the cache if its version is current. A
        repository not cached is read at once: its `stat` could only say to read it (on S3
        one request less for every repository a walk or a first read meets)."""
        if repo not in self._cache:
            return await self._read(repo)
        path = layout.index(repo)
        try:
            info: FileInfo = await self.driver.stat(path, files_only=True)
        except PathNotFound:
            self._cache.pop(repo, None)
            return None
        current = await self._cached_at(repo, info.version) if info.version is not None else None
        return current if current is not None else await self._read(repo)

    async def _cached_at(self, repo: str, version: str) -> tuple[str, Index] | None:
        """The cached index at `version`, as it is or brought there by the journal; None
        when it cannot be (then the file is read)."""
        hit = self._cache.get(repo)
        if hit is None or hit[0] == version:
            return hit
        replayed = await self._replay(repo, version)
        if replayed is not None:
            self._remember(repo, replayed)
        return replayed

    async def _read(self, repo: str) -> tuple[str, Index] | None:
        try:
            data, version = await self.driver.get_versioned(layout.index(repo))
        except PathNotFound:
            self._cache.pop(repo, None)
            return None
        found = (version, Index.parse(data))
        self._remember(repo, found)
        return found

    async def _replay(self, repo: str, target: str) -> tuple[str, Index] | None:
        """The cached index brought to version `target` by the journal, or None if it
        cannot be."""
        try:
            entries = await self.meta.index_changes(repo)
        except MetaUnavailable:
            return None
        following = {before: (after, change) for before, after, change in entries}
        cached = self._own(repo)
        if cached is None:  # dropped while the journal was read
            return None
        version, index, steps = cached[0], cached[1], 0
        while version != target and steps < len(entries):
            step = following.get(version)
            change = None if step is None else change_from_journal(jsondoc.loads(step[1]))
            if step is None or change is None:
                return None
            change(index)
            version, steps = step[0], steps + 1
        return (version, index) if version == target else None

    def _remember(self, repo: str, found: tuple[str, Index]) -> None:
        if repo not in self._cache and len(self._cache) >= self.max_entries:
            self._unseen.discard(evicted := next(iter(self._cache)))
            self._cache.pop(evicted)
        self._cache[repo] = found
        self._unseen.add(repo)  # read, replayed or written here: nobody else holds it yet

    def _own(self, repo: str) -> tuple[str, Index] | None:
        """The cached (version, index) to change: taken out of the cache when nobody else
        holds it (no half-made change can then be served), else a copy of it."""
        found = self._cache.get(repo)
        if found is None:
            return None
        if repo in self._unseen:
            self._unseen.discard(repo)
            del self._cache[repo]
            return found
        return found[0], found[1].copy()

    async def draft(self, repo: str) -> IndexDraft | None:
        """The next write of `repo`'s index begun from the cached index, for an `update`
        that only adds entries to it (`StorageDriver.draft`); None when there is nothing
        to begin with. Call under the repository lock, and pass it to `update`."""
        hit = self._cache.get(repo)
        begun = None if hit is None else hit[1].begin()
        if hit is None or begun is None:
            return None
        file = await self.driver.draft(layout.index(repo), begun[1])
        return None if file is None else IndexDraft(hit[0], begun[0], file)

    async def update(
        self, repo: str, change: Callable[[Index], Any], draft: IndexDraft | None = None
    ) -> Any:
        """Apply `change` to the current index (a copy if a reader holds it, see `_own`) and
        write it back if nobody else wrote meanwhile (a conditional write; on disk the
        caller's file lock makes it so), else start over from what the other writer left.
        Callers of one repository take turns (the repository lock). `draft`: from `draft`,
        finished here if the change only added entries to what it began with, else
        discarded."""
        try:
            return await self._update(repo, change, draft)
        finally:
            if draft is not None:
                await draft.file.discard()

    async def _update(
        self, repo: str, change: Callable[[Index], Any], draft: IndexDraft | None
    ) -> Any:
        path = layout.index(repo)
        for _ in range(UPDATE_ATTEMPTS):
            found = await self._current(repo) and self._own(repo)
            version, index = (None, Index()) if found is None else found
            result = change(index)
            # Readers elsewhere stop believing the key before the file changes.
            token = await self.versions.mark(repo) if self.versions.writes else None
            rest = None
            if draft is not None and version == draft.version:
                rest = index.after(draft.mark)
            if rest is not None and draft is not None:
                written, draft = await draft.file.finish(rest, version), None
            else:
                written = await self.driver.put_if(path, index.pieces(), version)
            if written is None:
                self._cache.pop(repo, None)
                continue
            self._remember(repo, (written, index))
            if isinstance(change, IndexChange):
                await self._note(repo, version, written, change)
            if token is not None:  # the journal first: readers told of `written` replay it
                await self.versions.settle(repo, token, written)
            return result
        raise StorageUnavailable(f"{path}: too many concurrent writers, gave up")

    async def _note(self, repo: str, before: str | None, after: str, change: IndexChange) -> None:
        try:
            await self.meta.add_index_change(repo, before, after, json.dumps(change.journal()))
        except MetaUnavailable as exc:  # the write is done; others will read the file
            log.warning("index change not journalled", extra={"repo": repo, "error": str(exc)})
