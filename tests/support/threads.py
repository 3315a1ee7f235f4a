"""Load from threads in the test process, running until the test stops it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Self


class Background:
    """A context manager running each of `workers` in a thread of its own, from entry until
    exit; each worker loops until `stopping` is set. Exit waits up to 60 s per thread."""

    def __init__(self, workers: list[Callable[[], None]], daemon: bool = False) -> None:
        self.stopping = threading.Event()
        self._threads = [threading.Thread(target=w, daemon=daemon) for w in workers]

    def __enter__(self) -> Self:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for t in self._threads:
            t.join(timeout=60)
