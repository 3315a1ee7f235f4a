"""`storage.gcTimeWindow` with a served registry: the background collection starts only
inside the window (UTC), and is deferred, with a log line, outside it."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.support.oci import push_blob, random_bytes
from tests.support.server import base_config, running_registry, wait_until


def window_around_now(inside: bool) -> str:
    """A one-hour window that holds this minute (UTC), or one that starts in two hours."""
    minute = int(time.time() % 86400 // 60)
    start = (minute - 30) % 1440 if inside else (minute + 120) % 1440
    end = (start + 60) % 1440
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


@pytest.mark.parametrize("inside", [True, False], ids=["inside", "outside"])
def test_background_gc_starts_only_inside_its_window(tmp_path: Path, inside: bool) -> None:
    config = base_config(tmp_path / "root")
    config["storage"].update(gcDelay="1s", gcInterval="1s", gcTimeWindow=window_around_now(inside))
    with running_registry(tmp_path, config) as proc, httpx.Client(base_url=proc.url) as c:
        orphan = push_blob(c, "app", random_bytes(100))
        path = tmp_path / "root" / "app" / "blobs" / "sha256" / orphan.split(":")[1]
        if inside:
            wait_until(lambda: not path.exists(), timeout=30)
        else:
            wait_until(lambda: "gc deferred until its time window" in proc.log_path.read_text())
            assert path.exists()
            assert '"gc run"' not in proc.log_path.read_text()
