"""Redis behind Sentinel (zot's `master_name`, `sentinel_password`): a real master, its
replica and a Sentinel; the registry follows the master through a failover without a
restart, and the metadata it keeps is in the new master afterwards."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from ocireg.errors import ConfigError
from ocireg.settings.drivers import RedisSettings
from tests.support.backends import Redis, RedisSentinel
from tests.support.oci import assert_image_pulls, push_image, unique_repo
from tests.support.server import RegistryProcess, base_config, free_port, run_cli, wait_until

MASTER_SET = "registry"
SENTINEL_PASSWORD = "sentinel-secret"
PASSWORD = "master-secret"  # the master's and the replica's


@contextlib.contextmanager
def master_replica_sentinel(workdir: Path) -> Iterator[tuple[Redis, Redis, RedisSentinel]]:
    started: list[Redis | RedisSentinel] = []
    try:
        auth = ("--requirepass", PASSWORD, "--masterauth", PASSWORD)
        master = Redis(workdir, *auth).start()
        started.append(master)
        replica = Redis(workdir, *auth, "--replicaof", "127.0.0.1", str(master.port)).start()
        started.append(replica)
        sentinel = RedisSentinel(workdir, MASTER_SET, master, SENTINEL_PASSWORD, PASSWORD)
        started.append(sentinel.start())
        yield master, replica, sentinel
    finally:
        for server in reversed(started):
            server.stop()


def sentinel_config(workdir: Path, sentinel_port: int, **cache: object) -> dict[str, Any]:
    """A registry's config with its metadata in Redis behind the Sentinel on that port
    (the master set MASTER_SET), plus more `cacheDriver` keys."""
    cfg = base_config(workdir / "root")
    cfg["storage"]["remoteCache"] = True
    cfg["storage"]["cacheDriver"] = {
        "name": "redis",
        "addr": [f"127.0.0.1:{sentinel_port}"],
        "master_name": MASTER_SET,
        **cache,
    }
    return cfg


def _client(server: Redis) -> redis.Redis:
    return redis.Redis(port=server.port, password=PASSWORD, socket_timeout=5)


def test_registry_follows_the_master_through_a_failover(tmp_path: Path) -> None:
    with master_replica_sentinel(tmp_path) as (master, replica, sentinel):
        prefix = uuid.uuid4().hex[:8]
        cfg = sentinel_config(
            tmp_path,
            sentinel.port,
            password=PASSWORD,
            sentinel_password=SENTINEL_PASSWORD,
            keyprefix=prefix,
            max_retries=5,
        )
        repositories = f"{prefix}:ocireg:repositories"
        proc = RegistryProcess(tmp_path, cfg, name="sentinel").start()
        try:
            with httpx.Client(base_url=proc.url, timeout=60) as client, _client(master) as first:
                before = push_image(client, unique_repo("before"), "v1")
                assert before.repo.encode() in first.zrange(repositories, 0, -1)
                assert first.wait(1, 5000) == 1  # the replica has it: a failover loses nothing

                master.stop()
                # While Sentinel has not named the replica yet: answers, never a 500.
                status = client.get("/v2/_catalog").status_code
                assert status in (200, 503), status
                wait_until(lambda: sentinel.master_port() == replica.port, timeout=30)

                after = push_image(client, unique_repo("after"), "v1")
                for image in (before, after):
                    assert_image_pulls(client, image, "v1")
                listed = client.get("/v2/_catalog")
                assert listed.status_code == 200, listed.text
                assert {before.repo, after.repo} <= set(listed.json()["repositories"])
            with _client(replica) as promoted:
                assert promoted.role()[0] == b"master"
                assert after.repo.encode() in promoted.zrange(repositories, 0, -1)
            assert "Traceback" not in proc.logs()
        finally:
            proc.stop()


def test_sentinel_settings_read_as_zot_reads_them() -> None:
    settings = RedisSettings.from_map(
        {
            "name": "redis",
            "addr": ["10.0.0.1:26379", "10.0.0.2:26379"],
            "master_name": "m",
            "sentinel_username": "watcher",
            "sentinel_password": "pw",
            "max_retries": 0,  # go-redis: 0 is its default (3)
            "max_retry_backoff": "2s",
        }
    )
    assert settings.master_name == "m"
    assert dict(settings.sentinel_auth) == {"username": "watcher", "password": "pw"}
    assert settings.retries is not None
    assert (settings.retries.retries, settings.retries.first, settings.retries.longest) == (
        3,
        0.008,
        2.0,
    )
    none = RedisSettings.from_map({"name": "redis", "max_retries": -1, "min_retry_backoff": -1})
    assert none.retries is not None and (none.retries.retries, none.retries.first) == (0, 0.0)
    assert RedisSettings.from_map({"name": "redis"}).retries is None
    with pytest.raises(ConfigError, match="master_name"):
        RedisSettings.from_map({"name": "redis", "url": "redis://x:6379", "master_name": "m"})


def test_no_sentinel_answering_is_a_clear_startup_error(tmp_path: Path) -> None:
    port = free_port()
    cfg = sentinel_config(tmp_path, port)
    path = tmp_path / "down.json"
    path.write_text(json.dumps(cfg))
    done = run_cli("serve", str(path), timeout=60)
    assert done.returncode != 0
    assert f"redis-sentinel://127.0.0.1:{port}/{MASTER_SET}" in done.stderr
    assert f"Sentinel 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr and "ConnectionPool" not in done.stderr
