"""Digest grammar and hashing (sha256 and sha512)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Protocol

from ocireg.errors import ErrorCode, RegistryError

# algorithm -> length of the lowercase hex encoding
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
_DIGEST_RE = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")  # fullmatch
_LOWER_HEX_RE = re.compile(r"[0-9a-f]*")


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...
    def hexdigest(self) -> str: ...


def _split(text: str) -> tuple[str, str] | str:
    """(algorithm, hex) of a valid digest, else why it is not one."""
    m = _DIGEST_RE.fullmatch(text)
    if not m:
        return "invalid digest"
    alg, hexpart = m.group(1), m.group(2)
    size = ALGORITHMS.get(alg)
    if size is None:
        return "unsupported digest algorithm"
    # A regex, not a per-character loop: this runs on every manifest and blob request.
    if len(hexpart) != size or not _LOWER_HEX_RE.fullmatch(hexpart):
        return "invalid digest encoding"
    return alg, hexpart


@dataclass(frozen=True, slots=True)
class Digest:
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse `alg:hex`; anything else, or an algorithm we cannot verify, is DIGEST_INVALID."""
        parts = _split(text)
        if isinstance(parts, str):
            raise RegistryError(ErrorCode.DIGEST_INVALID, parts, {"digest": text[:200]})
        return cls(*parts)

    @classmethod
    def is_valid(cls, text: str) -> bool:
        # Without raising: a tag is asked this on every manifest request.
        return not isinstance(_split(text), str)

    def hasher(self) -> Hasher:
        return new_hasher(self.algorithm)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        h = new_hasher(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())


def new_hasher(algorithm: str) -> Hasher:
    if algorithm not in ALGORITHMS:
        raise RegistryError(ErrorCode.DIGEST_INVALID, f"unsupported digest algorithm {algorithm}")
    return hashlib.new(algorithm)
