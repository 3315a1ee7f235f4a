"""What a process found stored lately, trusted for a short while (`Lately`): for looks at
the storage that only spare a client a wasted request, where each look on S3 is a round
trip and ~2 ms of the worker's CPU (docs/performance.md, "Tag writes on S3")."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class Lately(Generic[K]):
    """Keys noted in the last `seconds`, at most `most` of them (the oldest noted go first)."""

    def __init__(self, seconds: float = 30.0, most: int = 4096) -> None:
        self.seconds = seconds
        self.most = most
        self._noted: OrderedDict[K, float] = OrderedDict()  # key -> monotonic time

    def note(self, key: K) -> None:
        self._noted.pop(key, None)
        self._noted[key] = time.monotonic()
        if len(self._noted) > self.most:
            self._noted.popitem(last=False)

    def forget(self, key: K) -> None:
        self._noted.pop(key, None)

    def __contains__(self, key: K) -> bool:
        when = self._noted.get(key)
        return when is not None and time.monotonic() - when < self.seconds
