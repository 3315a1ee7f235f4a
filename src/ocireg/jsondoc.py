"""JSON documents from clients and from storage, read as Go's decoder (zot's, the clients')
reads them.

- **Nesting is bounded.** The stdlib parser recurses once per level and raises
  `RecursionError` past the interpreter's limit (a 500, and a traceback, for a manifest of
  100,000 `[`). Real manifests and indexes nest about five levels; anything past `MAX_DEPTH`
  is refused as a `ValueError`, like any other JSON that is not a document we take.
- **`NaN`, `Infinity` and numbers out of a double's range are not JSON** (the stdlib takes
  them; Go refuses them): `ValueError`.
- **A lone surrogate escape (`"\\ud800"`) becomes U+FFFD**, as Go decodes it. The stdlib
  keeps it as a code point that no UTF-8 encoder takes, so a stored manifest carrying one
  would fail every later use of its text (the search index, the referrers list, the pages)
  with a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

MAX_DEPTH = 64

# What can put a lone surrogate into a parsed string: its escape, or (bytes are decoded with
# `surrogatepass` by json.loads) its UTF-8-like bytes. Looked for first, and with `in` before
# any regex: a regex scan of a 2 MB index.json costs about what parsing it does.
_ESCAPE_BYTES = re.compile(rb"\\u[dD][89a-fA-F]")
_RAW_BYTES = re.compile(rb"\xed[\xa0-\xbf]")
_ESCAPE_TEXT = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def loads(data: bytes | str) -> Any:
    """`json.loads` as described above: ValueError for what is not a document we take."""
    try:
        doc = json.loads(data, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if _too_deep(doc):
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    if _may_hold_surrogates(data):
        doc = _without_surrogates(doc)
    return doc


def _may_hold_surrogates(data: bytes | str) -> bool:
    if isinstance(data, bytes):
        if (b"\\ud" in data or b"\\uD" in data) and _ESCAPE_BYTES.search(data):
            return True
        return b"\xed" in data and _RAW_BYTES.search(data) is not None
    if ("\\ud" in data or "\\uD" in data) and _ESCAPE_TEXT.search(data):
        return True
    return not data.isascii() and _SURROGATE.search(data) is not None


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:40]} is out of range")
    return value


def _without_surrogates(node: Any) -> Any:
    # Depth is bounded already (checked above), so recursion is safe here.
    if isinstance(node, str):
        return _SURROGATE.sub("\ufffd", node)
    if isinstance(node, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_without_surrogates(v) for v in node]
    return node


def _too_deep(doc: Any) -> bool:
    # Iterative, so that checking the depth cannot itself run out of stack.
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
