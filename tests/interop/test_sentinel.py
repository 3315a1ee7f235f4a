"""One cacheDriver naming Redis Sentinels (`addr` + `master_name`), given to zot and to
ocireg: both start on it, keep their metadata in the master the Sentinel names, and serve
pushes and pulls through a failover to the replica."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
import redis

from tests.meta.test_sentinel import (
    PASSWORD,
    SENTINEL_PASSWORD,
    master_replica_sentinel,
    sentinel_config,
)
from tests.support.oci import assert_image_pulls, push_image
from tests.support.server import wait_until
from tests.support.zot import zot_or_ocireg

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["zot", "ocireg"])
def test_the_same_sentinel_config_serves_through_a_failover(tmp_path: Path, kind: str) -> None:
    with master_replica_sentinel(tmp_path) as (master, replica, sentinel):
        prefix = uuid.uuid4().hex[:8]
        config = sentinel_config(
            tmp_path,
            sentinel.port,
            password=PASSWORD,
            sentinel_password=SENTINEL_PASSWORD,
            keyprefix=prefix,
        )
        proc = zot_or_ocireg(kind, tmp_path, config)
        proc.start()
        try:
            with httpx.Client(base_url=proc.url, timeout=60) as client:
                before = push_image(client, "team/before", "v1")
                with redis.Redis(port=master.port, password=PASSWORD) as first:
                    assert first.keys(f"{prefix}:*"), "nothing kept in the master"
                    assert first.wait(1, 5000) == 1
                master.stop()
                wait_until(lambda: sentinel.master_port() == replica.port, timeout=30)
                # The first requests after the failover may still meet the old master.
                after = wait_until(lambda: _pushed(client, "team/after"), timeout=30)
                for image in (before, after):
                    assert_image_pulls(client, image, "v1")
        finally:
            proc.stop()


def _pushed(client: httpx.Client, repo: str) -> object:
    try:
        return push_image(client, repo, "v1")
    except AssertionError:
        return None
