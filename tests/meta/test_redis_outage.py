"""A Redis that stops answering (paused: the kernel still accepts connections) costs a
request the documented timeouts (docs/storage.md, "Outages": 3 s to connect, 5 s to read),
not those times every retry: a command that timed out is not sent again."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.backends import Redis
from tests.support.server import RegistryProcess, base_config


@pytest.mark.parametrize(
    "retry_keys",
    [{}, {"max_retries": 3}],
    ids=["redis-py-defaults-replaced", "go-redis-retries"],
)
def test_paused_redis_is_503_within_the_read_timeout(
    tmp_path: Path, retry_keys: dict[str, Any]
) -> None:
    redis = Redis(tmp_path).start()
    proc: RegistryProcess | None = None
    try:
        cfg = base_config(tmp_path / "root", workers=1)
        cfg["storage"]["remoteCache"] = True
        cfg["storage"]["cacheDriver"] = {
            "name": "redis",
            "addr": f"127.0.0.1:{redis.port}",
            **retry_keys,
        }
        proc = RegistryProcess(tmp_path, cfg).start()
        with httpx.Client(base_url=proc.url, timeout=120) as client:
            assert client.get("/v2/_catalog").status_code == 200
            assert redis.proc is not None
            os.kill(redis.proc.pid, signal.SIGSTOP)
            try:
                started = time.monotonic()
                answer = client.get("/v2/_catalog")
                waited = time.monotonic() - started
            finally:
                os.kill(redis.proc.pid, signal.SIGCONT)
        assert answer.status_code == 503, answer.text
        # One read timeout (5 s) and some slack; redis-py's default retries made it 59 s.
        assert waited < 8, waited
    finally:
        if proc is not None:
            proc.stop()
        with contextlib.suppress(ProcessLookupError):
            redis.stop()
