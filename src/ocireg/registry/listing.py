"""What zot's lists go by: when an image was last updated, and whether a tag is an image.

Shared by the search index (`registry/search.py`, which records both per tag so that zot's
lists can be ordered and counted without reading every manifest) and the GraphQL summaries
(`api/graphql/summaries.py`, which show them): one rule, so the order the index gives is the
order the summaries show.

zot's `LastUpdated` of an image: the `org.opencontainers.image.created` annotation (or its
label-schema twin, `org.label-schema.build-date`), in the manifest's annotations, else the
config's labels; else the config's `created`; else its last history entry's; else the zero
time. An index: its own annotation, else its newest manifest's. zot does not list a
signature as an image: cosign's `sha256-<hex>.sig` tag, or a notation or cosign manifest with
a subject.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NOTATION_SIGNATURE = "application/vnd.cncf.notary.signature"
COSIGN_SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SIGNATURE_TOOLS = {
    NOTATION_SIGNATURE: "notation",
    COSIGN_SIGNATURE: "cosign",
    COSIGN_BUNDLE: "cosign",
}
# cosign's tag for the signature of sha256:<hex>; zot lists it as a signature, not an image
COSIGN_TAG = re.compile(r"sha256-[0-9a-f]{64}\.sig")
CREATED = ("org.opencontainers.image.created", "org.label-schema.build-date")
_RFC3339 = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)", re.IGNORECASE
)


class Stamp(NamedTuple):
    """A time as zot writes it (Go's RFC3339Nano: the fraction's digits kept, trailing
    zeros dropped, `Z` for UTC) and as ocireg compares it (to the microsecond)."""

    when: datetime
    text: str


def stamp(value: Any) -> Stamp | None:
    """An RFC 3339 time from a document, else None."""
    if not isinstance(value, str):
        return None
    match = _RFC3339.fullmatch(value.strip())
    if match is None:
        return None
    whole, fraction, zone = match.groups()
    fraction = (fraction or "").rstrip("0")
    zone = "Z" if zone in ("Z", "z", "+00:00", "-00:00") else zone
    try:
        when = datetime.fromisoformat(
            f"{whole}.{fraction[:6].ljust(6, '0')}{'+00:00' if zone == 'Z' else zone}"
        )
    except ValueError:
        return None
    return Stamp(when, f"{whole}{'.' + fraction if fraction else ''}{zone}")


ZERO = Stamp(ZERO_TIME, "0001-01-01T00:00:00Z")


def epoch_stamp(seconds: float) -> Stamp:
    """A time in seconds since 1970 (a pull time), as zot writes it."""
    when = EPOCH + timedelta(microseconds=round(seconds * 1_000_000))
    fraction = f"{when.microsecond:06d}".rstrip("0")
    return Stamp(when, f"{when:%Y-%m-%dT%H:%M:%S}{'.' + fraction if fraction else ''}Z")


def text_of(mapping: Any, key: str) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else ""


def mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def pick(annotations: dict[str, Any], labels: dict[str, Any], keys: tuple[str, str]) -> str:
    """zot's order: the annotation, its label-schema twin, then the same in the labels."""
    for source in (annotations, labels):
        for key in keys:
            value = text_of(source, key)
            if value:
                return value
    return ""


def labels_of(config: dict[str, Any]) -> dict[str, Any]:
    return mapping(mapping(config.get("config")).get("Labels"))


def config_updated(config: dict[str, Any]) -> Stamp:
    """The config's `created`, else its last history entry's, else the zero time."""
    created = stamp(config.get("created"))
    if created is not None:
        return created
    history = config.get("history")
    if isinstance(history, list) and history and isinstance(history[-1], dict):
        return stamp(history[-1].get("created")) or ZERO
    return ZERO


def image_updated(manifest: dict[str, Any], config: dict[str, Any]) -> Stamp:
    """zot's `LastUpdated` of an image manifest, given its config (`{}` when unreadable)."""
    annotations = mapping(manifest.get("annotations"))
    created = stamp(pick(annotations, labels_of(config), CREATED))
    return created or config_updated(config)


def index_created(index: dict[str, Any]) -> Stamp | None:
    """An index's own created annotation (else its newest manifest's time is its)."""
    return stamp(pick(mapping(index.get("annotations")), {}, CREATED))


def is_signature(artifact_type: str | None, manifest: dict[str, Any]) -> bool:
    """A notation or cosign signature of a subject: zot keeps it as its subject's signature,
    not as an image."""
    return artifact_type in SIGNATURE_TOOLS and isinstance(manifest.get("subject"), dict)


def microseconds(when: datetime) -> int:
    """A time as whole microseconds since 1970 (exact: what the index sorts by)."""
    return (when - EPOCH) // timedelta(microseconds=1)
