"""JSON documents from clients and from storage, with a bound on nesting.

The stdlib parser recurses once per level and raises `RecursionError` past the interpreter's
limit (a 500, and a traceback, for a manifest of 100,000 `[`). Real manifests and indexes
nest about five levels; anything past `MAX_DEPTH` is refused as a `ValueError`, like any
other JSON that is not a document we take.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64


def loads(data: bytes | str) -> Any:
    """`json.loads`, except that nesting deeper than MAX_DEPTH raises ValueError."""
    try:
        doc = json.loads(data)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    if _too_deep(doc):
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return doc


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
