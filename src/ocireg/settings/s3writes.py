"""distribution's s3-aws parameters for how objects are written, which zot passes on: server-
side encryption, storage class, canned ACL, part sizes, the client's user agent and AWS's
endpoint variants. Read here with distribution's names, ranges and values; `S3Settings`
(`drivers.py`) keeps them and the S3 driver applies them (`ocireg.storage.s3.client`)."""

from __future__ import annotations

from typing import Any

from ocireg.errors import ConfigError
from ocireg.settings.keys import boolean, integer, join

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's minimum for every part of a multipart upload but the last
MAX_PART = 5 << 30  # S3's maximum for a part, and CopyObject's for an object
MAX_PARTS = 10_000  # S3's maximum number of parts of one multipart upload

# ocireg's own defaults where distribution's would change what ocireg did before the keys
# were read: parts of 6 MiB keep an upload's buffers small (docs/performance.md, "S3
# worker memory"), and a copy is one CopyObject whenever S3 allows it (measured no slower:
# docs/storage.md, "Why chunked sessions keep the copy").
DEFAULT_CHUNK = 6 * MiB
DEFAULT_COPY_THRESHOLD = MAX_PART
DEFAULT_COPY_CHUNK = 1 << 30
DEFAULT_COPY_CONCURRENCY = 4
# The part copies of one object share the worker's S3 connection pool (`S3Client`, 64) with
# every other request it serves: more than this many at once would starve those.
MAX_COPY_CONCURRENCY = 16

# distribution's list: the classes an object can be read from at once (no Glacier restore).
# NONE sends no class (an S3 server that knows none).
STORAGE_CLASSES = (
    "NONE",
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "OUTPOSTS",
    "GLACIER_IR",
    "EXPRESS_ONEZONE",
)
OBJECT_ACLS = (
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
    "aws-exec-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
)
KEYS = (
    "encrypt",
    "keyid",
    "v4auth",
    "chunksize",
    "multipartcopychunksize",
    "multipartcopymaxconcurrency",
    "multipartcopythresholdsize",
    "storageclass",
    "objectacl",
    "useragent",
    "usedualstack",
    "accelerate",
)


def write_options(
    spec: dict[str, Any], where: str, warnings: list[str], notices: list[str]
) -> dict[str, Any]:
    """The `S3Settings` fields of these keys in `spec` (lower-cased keys); a value out of
    range is a ConfigError, as in distribution."""
    flags: dict[str, Any] = {
        key: boolean(spec[key], join(where, key), strings=True)
        for key in ("encrypt", "usedualstack", "accelerate")
        if key in spec
    }
    if "v4auth" in spec and not boolean(spec["v4auth"], join(where, "v4auth"), strings=True):
        warnings.append(join(where, "v4auth"))  # false: Signature Version 2, not implemented
    keyid = _text(spec, "keyid")
    if keyid and not flags.get("encrypt"):
        # distribution documents keyid as ignored unless encrypt is true
        notices.append(f"{join(where, 'keyid')}: ignored without encrypt: true")
        keyid = None
    if spec.get("regionendpoint"):
        for key in ("accelerate", "usedualstack"):
            if flags.pop(key, False):
                notices.append(
                    f"{join(where, key)}: ignored with regionendpoint (it picks one of AWS's"
                    " own endpoints)"
                )
    sizes = {
        "chunksize": (MIN_PART, MAX_PART),
        "multipartcopychunksize": (MIN_PART, MAX_PART),
        "multipartcopythresholdsize": (0, MAX_PART),
        "multipartcopymaxconcurrency": (1, None),
    }
    numbers = {
        key: _bounded(spec[key], join(where, key), low, high)
        for key, (low, high) in sizes.items()
        if key in spec
    }
    return {
        **flags,
        **numbers,
        "keyid": keyid,
        "storageclass": _storage_class(spec.get("storageclass"), join(where, "storageclass")),
        "objectacl": _object_acl(spec.get("objectacl"), join(where, "objectacl")),
        "useragent": _text(spec, "useragent"),
    }


def _text(spec: dict[str, Any], key: str) -> str | None:
    value = spec.get(key)
    return str(value) if value not in (None, "") else None


def _bounded(value: Any, where: str, low: int, high: int | None) -> int:
    number = integer(value, where)
    if high is not None and not low <= number <= high:
        raise ConfigError(where, f"expected a number from {low} to {high}, got {number}")
    if number < low:
        raise ConfigError(where, f"expected a number from {low} up, got {number}")
    return number


def _storage_class(value: Any, where: str) -> str | None:
    """The class to send, None for none: absent (the bucket's default, STANDARD on AWS, as
    ocireg always did) or NONE. Matched in any case, as distribution does."""
    if value is None:
        return None
    name = str(value).upper() if isinstance(value, str) else None
    if name not in STORAGE_CLASSES:
        raise ConfigError(where, f"expected one of {', '.join(STORAGE_CLASSES)}, got {value!r}")
    return None if name == "NONE" else name


def _object_acl(value: Any, where: str) -> str | None:
    """The canned ACL to send, None when absent. distribution sends `private` then; S3 makes
    a new object private without an ACL too, so ocireg sends none and its requests stay as
    they were before this key was read (not every S3-compatible server implements ACLs)."""
    if value is None:
        return None
    if value not in OBJECT_ACLS:
        raise ConfigError(where, f"expected one of {', '.join(OBJECT_ACLS)}, got {value!r}")
    return str(value)
