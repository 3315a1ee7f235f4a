"""zot's `ImageSummary`, `ManifestSummary` and `RepoSummary`, built from stored documents.

The values follow zot's conversion (pkg/extensions/search/convert): sizes are decimal
strings (manifest + config + layers; an index adds up its manifests), `LastUpdated` is the
`created` annotation or label, else the config's `created`, else its last history entry;
title, description and the like come from the manifest's annotations, else the config's
labels (OCI keys, then label-schema ones). Push and tag times and pushers are the search
index's (`Source.stamps`). What ocireg does not keep is answered as zot answers without
it: an empty vulnerability summary (no scanner).
Stars and bookmarks are the metadata store's (`with_marks`).

Summaries are plain dicts keyed by zot's field names; keys starting with `_` are ours (for
sorting and filtering) and never reach the answer. Referrers and signatures cost a lookup
each, so they are callables that the GraphQL executor runs only when the query asks.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from ocireg.api.graphql.source import Source
from ocireg.registry.listing import (
    COSIGN_TAG,
    SIGNATURE_TOOLS,
    ZERO,
    epoch_stamp,
    image_updated,
    index_created,
    is_signature,
    labels_of,
    mapping,
    microseconds,
    pick,
    stamp,
    text_of,
)
from ocireg.registry.manifests import INDEX_TYPES

# Annotation keys zot reads, each with the label-schema label it falls back to.
_FIELDS = {
    "Description": ("org.opencontainers.image.description", "org.label-schema.description"),
    "Licenses": ("org.opencontainers.image.licenses", "org.label-schema.license"),
    "Title": ("org.opencontainers.image.title", "org.label-schema.name"),
    "Documentation": ("org.opencontainers.image.documentation", "org.label-schema.usage"),
    "Source": ("org.opencontainers.image.source", "org.label-schema.vcs-url"),
    "Vendor": ("org.opencontainers.image.vendor", "org.label-schema.vendor"),
}
_AUTHORS = "org.opencontainers.image.authors"
_LABELS = "org.label-schema.labels"
NO_VULNERABILITIES = {
    "MaxSeverity": "",
    "Count": 0,
    "UnknownCount": 0,
    "LowCount": 0,
    "MediumCount": 0,
    "HighCount": 0,
    "CriticalCount": 0,
}

Lazy = Callable[..., Awaitable[Any]]


def _descriptive(annotations: dict[str, Any], labels: dict[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        name: pick(annotations, labels, keys) for name, keys in _FIELDS.items()
    }
    fields["Labels"] = text_of(annotations, _LABELS) or text_of(labels, _LABELS)
    fields["Authors"] = text_of(annotations, _AUTHORS)
    return fields


def _platform(doc: dict[str, Any] | None) -> dict[str, str]:
    doc = doc or {}
    arch = text_of(doc, "architecture")
    variant = text_of(doc, "variant")
    return {"Os": text_of(doc, "os"), "Arch": f"{arch}/{variant}" if variant else arch}


def _layers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    layers = manifest.get("layers")
    return [
        {"Size": str(layer.get("size", 0)), "Digest": layer.get("digest")}
        for layer in (layers if isinstance(layers, list) else [])
        if isinstance(layer, dict)
    ]


def _history(manifest: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Each history entry with the layer it made (none for an empty layer), as zot pairs
    them; without history, the layers alone."""
    layers = _layers(manifest)
    history = config.get("history")
    if not isinstance(history, list) or not history:
        return [{"Layer": layer, "HistoryDescription": {}} for layer in layers]
    entries = []
    next_layer = 0
    for item in history:
        item = item if isinstance(item, dict) else {}
        empty = bool(item.get("empty_layer"))
        created = stamp(item.get("created"))
        layer = None
        if not empty and next_layer < len(layers):
            layer = layers[next_layer]
            next_layer += 1
        entries.append(
            {
                "Layer": layer,
                "HistoryDescription": {
                    "Created": created.text if created else None,
                    "CreatedBy": text_of(item, "created_by"),
                    "Author": text_of(item, "author"),
                    "Comment": text_of(item, "comment"),
                    "EmptyLayer": empty,
                },
            }
        )
    return entries


def referrer(desc: dict[str, Any]) -> dict[str, Any]:
    annotations = desc.get("annotations")
    pairs = annotations.items() if isinstance(annotations, dict) else ()
    return {
        "MediaType": text_of(desc, "mediaType"),
        "ArtifactType": text_of(desc, "artifactType"),
        "Size": desc.get("size") if isinstance(desc.get("size"), int) else 0,
        "Digest": text_of(desc, "digest"),
        "Annotations": [{"Key": k, "Value": v} for k, v in sorted(pairs)],
    }


class Signatures:
    """Signatures of a manifest: notation and cosign referrers, and cosign's
    `sha256-<hex>.sig` tag. zot checks trust against uploaded keys; ocireg keeps none, so
    none is trusted."""

    def __init__(self, src: Source, repo: str, digest: str, tags: frozenset[str]) -> None:
        self.src = src
        self.repo = repo
        self.digest = digest
        self.tags = tags
        self._found: asyncio.Future[list[dict[str, Any]]] | None = None

    def found(self) -> Awaitable[list[dict[str, Any]]]:
        if self._found is None:
            self._found = asyncio.ensure_future(self._find())
        return self._found

    async def _find(self) -> list[dict[str, Any]]:
        tools = []
        if self.digest.replace(":", "-", 1) + ".sig" in self.tags:
            tools.append("cosign")
        for desc in await self.src.referrers(self.repo, self.digest):
            tool = SIGNATURE_TOOLS.get(text_of(desc, "artifactType"))
            if tool:
                tools.append(tool)
        return [{"Tool": tool, "IsTrusted": False, "Author": ""} for tool in tools]

    async def signed(self, *_: Any) -> bool:
        return bool(await self.found())

    async def info(self, *_: Any) -> list[dict[str, Any]]:
        return await self.found()


def _referrers(src: Source, repo: str, digest: str) -> Lazy:
    async def resolve(*_: Any) -> list[dict[str, Any]]:
        return [referrer(desc) for desc in await src.referrers(repo, digest)]

    return resolve


# What a manifest and its config say, by the manifest's digest: content-addressed, so an
# entry is never stale (a tag moved elsewhere names another digest). Lists of many images
# then read only index.json, not every manifest and config again.
FACTS_KEPT = 20000
_FACTS: OrderedDict[str, dict[str, Any]] = OrderedDict()


async def _facts(src: Source, repo: str, desc: dict[str, Any]) -> dict[str, Any] | None:
    digest = text_of(desc, "digest")
    known = _FACTS.get(digest)
    if known is not None:
        _FACTS.move_to_end(digest)
        return known
    manifest = await src.document(repo, digest)
    if manifest is None:
        return None
    config_desc = mapping(manifest.get("config"))
    config_digest = text_of(config_desc, "digest")
    config = (await src.document(repo, config_digest) if config_digest else None) or {}
    fields = _descriptive(mapping(manifest.get("annotations")), labels_of(config))
    fields["Authors"] = fields["Authors"] or text_of(config, "author")
    updated = image_updated(manifest, config)  # the rule the search index orders by
    blobs = {digest: int(desc.get("size") or 0), config_digest: int(config_desc.get("size") or 0)}
    for layer in manifest.get("layers") or []:
        if isinstance(layer, dict) and isinstance(layer.get("digest"), str):
            blobs[layer["digest"]] = int(layer.get("size") or 0)
    artifact_type = text_of(manifest, "artifactType") or text_of(config_desc, "mediaType")
    facts = {
        "Digest": digest,
        "ConfigDigest": config_digest,
        "LastUpdated": updated.text,
        "Size": str(sum(blobs.values())),
        "Platform": _platform(config),
        "Layers": _layers(manifest),
        "History": _history(manifest, config),
        "Vulnerabilities": NO_VULNERABILITIES,
        "ArtifactType": artifact_type,
        "_signature": is_signature(artifact_type, manifest),
        "_updated": microseconds(updated.when),  # as the search index orders
        "_stamp": updated,
        "_blobs": blobs,
        "_fields": fields,
        "_media_type": text_of(manifest, "mediaType") or text_of(desc, "mediaType"),
    }
    _FACTS[digest] = facts
    while len(_FACTS) > FACTS_KEPT:
        _FACTS.popitem(last=False)
    return facts


async def _manifest(
    src: Source,
    repo: str,
    desc: dict[str, Any],
    tags: frozenset[str],
    index_platform: Any = None,
) -> dict[str, Any] | None:
    """A `ManifestSummary`, with what the image summary needs kept under `_` keys (the
    cached facts are shared: never changed here)."""
    facts = await _facts(src, repo, desc)
    if facts is None:
        return None
    digest = facts["Digest"]
    signatures = Signatures(src, repo, digest, tags)
    summary = {
        **facts,
        "DownloadCount": (await src.pulls(repo)).counts.get(digest, 0),
        "IsSigned": signatures.signed,
        "SignatureInfo": signatures.info,
        "Referrers": _referrers(src, repo, digest),
        "_signatures": signatures,
    }
    platform = facts["Platform"]
    if not platform["Os"] and not platform["Arch"] and isinstance(index_platform, dict):
        summary["Platform"] = _platform(index_platform)  # zot: the index's word, if any
    return summary


async def image(
    src: Source, repo: str, tag: str, desc: dict[str, Any], tags: frozenset[str]
) -> dict[str, Any] | None:
    """zot's `ImageSummary` of the image `tag` names (a manifest or an index), or None when
    its documents cannot be read."""
    digest = text_of(desc, "digest")
    media_type = text_of(desc, "mediaType")
    if media_type in INDEX_TYPES:
        index = await src.document(repo, digest)
        if index is None:
            return None
        children = [
            child
            for child in index.get("manifests") or []
            if isinstance(child, dict) and child.get("mediaType") not in INDEX_TYPES
        ]
        found = await asyncio.gather(
            *(_manifest(src, repo, child, tags, child.get("platform")) for child in children)
        )
        manifests = [m for m in found if m is not None]
        annotations = mapping(index.get("annotations"))
        first = manifests[0]["_fields"] if manifests else {}
        fields = _descriptive(annotations, {})
        created = index_created(index)
        for key, value in first.items():  # the index's annotations first, then its first image's
            fields[key] = fields.get(key) or value
        updated = created or max((m["_stamp"] for m in manifests), default=ZERO)
        size = sum(sum(m["_blobs"].values()) for m in manifests)
        signatures = Signatures(src, repo, digest, tags)
        artifact_type = text_of(index, "artifactType")
        all_blobs = {k: v for m in manifests for k, v in m["_blobs"].items()}
    else:
        manifest = await _manifest(src, repo, desc, tags)
        if manifest is None:
            return None
        manifests = [manifest]
        fields = dict(manifest["_fields"])
        updated = manifest["_stamp"]
        size = sum(manifest["_blobs"].values())
        signatures = manifest["_signatures"]
        artifact_type = manifest["ArtifactType"]
        media_type = manifest["_media_type"]
        all_blobs = manifest["_blobs"]
    pulls, stamps = await asyncio.gather(src.pulls(repo), src.stamps(repo))
    last_pull = pulls.last.get(digest)
    push = stamps.pushes.get(digest)
    pushed = ZERO if push is None else epoch_stamp(push.at)
    tagged_at = stamps.tagged.get(tag)
    tagged = None if tagged_at is None else epoch_stamp(tagged_at)
    return {
        "RepoName": repo,
        "Tag": tag,
        "Digest": digest,
        "MediaType": media_type,
        "Manifests": manifests,
        "Size": str(size),
        "DownloadCount": pulls.counts.get(digest, 0),
        "LastPullTimestamp": ZERO.text if last_pull is None else epoch_stamp(last_pull).text,
        "PushTimestamp": pushed.text,
        "PushedBy": "" if push is None else push.by,
        "TaggedTimestamp": (tagged or pushed).text,  # zot's fallback: the push time
        "LastUpdated": updated.text,
        "IsSigned": signatures.signed,
        "SignatureInfo": signatures.info,
        **fields,
        "Vulnerabilities": NO_VULNERABILITIES,
        "Referrers": _referrers(src, repo, digest),
        "IsDeletable": src.access.delete(repo),
        "ArtifactType": artifact_type,
        "_updated": microseconds(updated.when),  # as the search index orders
        "_stamp": updated,
        "_tagged": tagged,  # None: not known (a repository's LastUpdated)
        "_blobs": all_blobs,
        "_signatures": signatures,
    }


def listed(tag: str, summary: dict[str, Any] | None) -> bool:
    """Whether zot lists a tag as an image: not a signature (a notation or cosign
    signature of a subject, or cosign's `sha256-<hex>.sig` tag), which zot keeps as the
    signed image's signature instead."""
    if summary is None or COSIGN_TAG.fullmatch(tag):
        return False
    if summary["MediaType"] in INDEX_TYPES:
        return True
    return not summary["Manifests"][0]["_signature"]


async def images_of(
    src: Source, repo: str, only: Collection[str] | None = None
) -> list[dict[str, Any]]:
    """The summaries of every tagged image of `repo` (tag order), as zot lists them; `only`:
    of these tags only (a page)."""
    tagged = await src.tagged(repo)
    tags = frozenset(tag for tag, _ in tagged)
    chosen = [(tag, desc) for tag, desc in tagged if only is None or tag in only]
    found = await asyncio.gather(*(image(src, repo, tag, desc, tags) for tag, desc in chosen))
    return [
        s for (tag, _), s in zip(chosen, found, strict=True) if s is not None and listed(tag, s)
    ]


def downloads(images: list[dict[str, Any]]) -> int:
    """A repository's download count as zot gives it: the sum over its tags (a tag's image
    counted once per tag), where zot counts no pull of a signature (not among `images`)."""
    return sum(summary["DownloadCount"] for summary in images)


def repo_summary(repo: str, images: list[dict[str, Any]], rank: int = 0) -> dict[str, Any]:
    """zot's `RepoSummary` from the repository's image summaries (no newest image, and a
    zero time, for a repository without tags). Its `LastUpdated`, as zot's: the newest
    image's, or the time a tag was created if that is later."""
    newest = max(images, key=lambda i: (i["_updated"], i["Tag"])) if images else None
    times = [i["_tagged"] for i in images if i["_tagged"] is not None]
    last = max([newest["_stamp"], *times], key=lambda t: t.when) if newest else ZERO
    blobs: dict[str, int] = {}
    platforms: list[dict[str, str]] = []
    vendors: list[str] = []
    for summary in images:
        blobs.update(summary["_blobs"])
        for manifest in summary["Manifests"]:
            platform = manifest["Platform"]
            if (platform["Os"] or platform["Arch"]) and platform not in platforms:
                platforms.append(platform)
        if summary["Vendor"] and summary["Vendor"] not in vendors:
            vendors.append(summary["Vendor"])
    return {
        "Name": repo,
        "LastUpdated": last.text,
        "Size": str(sum(blobs.values())),
        "Platforms": platforms,
        "Vendors": vendors,
        "NewestImage": newest,
        "DownloadCount": downloads(images),
        "StarCount": 0,  # `with_marks` fills these three
        "IsBookmarked": False,
        "IsStarred": False,
        "Rank": rank,
        "_updated": microseconds(last.when),  # as the search index orders repositories
        "_signatures": newest["_signatures"] if newest else None,
    }


async def with_marks(src: Source, repos: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """These repository summaries with their star counts and the caller's marks, as zot
    fills every `RepoSummary`: one read of the counts for all of them."""
    marks = await src.marks()
    counts = await src.star_counts([r["Name"] for r in repos]) if repos else {}
    for summary in repos:
        name = summary["Name"]
        summary["StarCount"] = counts.get(name, 0)
        summary["IsStarred"] = name in marks.starred
        summary["IsBookmarked"] = name in marks.bookmarked
    return repos
