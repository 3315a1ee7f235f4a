"""zot's s3 storageDriver keys: case-insensitive, AWS environment fallback, the doubled prefix."""

from __future__ import annotations

from typing import Any

import pytest

from ocireg.config import Config, build_config
from ocireg.errors import ConfigError
from ocireg.server.services import sole_sqlite_writer
from ocireg.storage.s3 import S3Settings


def test_keys_are_case_insensitive_and_prefix_is_doubled() -> None:
    s = S3Settings.from_map(
        {
            "Name": "s3",
            "RootDirectory": "/zot",
            "BUCKET": "b",
            "RegionEndpoint": "127.0.0.1:8333",
            "Secure": False,
            "ForcePathStyle": "true",
        }
    )
    assert (s.bucket, s.prefix, s.forcepathstyle) == ("b", "zot/zot/", True)
    assert s.endpoint == "http://127.0.0.1:8333"  # no scheme: `secure` decides


def test_no_rootdirectory_means_bucket_root() -> None:
    assert S3Settings.from_map({"bucket": "b"}).prefix == ""
    assert S3Settings.from_map({"bucket": "b", "rootdirectory": "/a/b/"}).prefix == "a/b/a/b/"


def test_credentials_fall_back_to_aws_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    s = S3Settings.from_map({"bucket": "b", "accesskey": "cfg-key"})
    assert (s.accesskey, s.secretkey, s.region) == ("cfg-key", "env-secret", "eu-west-3")


def test_bucket_is_required() -> None:
    with pytest.raises(ConfigError) as exc:
        S3Settings.from_map({"name": "s3"})
    assert exc.value.path == "storage.storageDriver.bucket"


def test_redirect_endpoint_defaults_to_the_driver_endpoint() -> None:
    s = S3Settings.from_map({"bucket": "b", "regionendpoint": "http://10.0.0.5:8333"})
    assert s.redirect_endpoint == "http://10.0.0.5:8333"
    s = S3Settings.from_map(
        {"bucket": "b", "regionendpoint": "http://10.0.0.5:8333", "RedirectEndpoint": "s3.example"}
    )
    assert s.redirect_endpoint == "https://s3.example"  # no scheme: `secure` decides
    assert s.endpoint == "http://10.0.0.5:8333"  # the driver itself still uses its own


def _config(cluster: bool = False, redis: bool = False, solewriter: Any = True) -> Config:
    storage: dict[str, Any] = {
        "rootDirectory": "/r",
        "storageDriver": {"name": "s3", "bucket": "b", "SoleWriter": solewriter},
    }
    if redis:
        storage["remoteCache"] = True
        storage["cacheDriver"] = {"name": "redis", "url": "redis://127.0.0.1:6379"}
    raw: dict[str, Any] = {"storage": storage}
    if cluster:
        raw["cluster"] = {"members": ["127.0.0.1:5000"], "hashKey": "loremipsumdolors"}
    return build_config(raw)


def test_solewriter_keeps_the_index_versions_in_sqlite_on_one_instance_only() -> None:
    assert S3Settings.from_map({"bucket": "b"}).solewriter is False  # correctness first
    assert S3Settings.from_map({"bucket": "b", "solewriter": "true"}).solewriter is True
    one = _config()
    assert sole_sqlite_writer(one) and one.warnings == () and one.notices == ()
    assert not sole_sqlite_writer(_config(solewriter=False))
    # With Redis every process keeps the keys anyway (registry/store.py).
    assert not sole_sqlite_writer(_config(redis=True))
    # In a cluster each member has a sqlite file of its own: off, and said so.
    cluster = _config(cluster=True)
    assert not sole_sqlite_writer(cluster)
    assert [w.split(":")[0] for w in cluster.notices] == ["storage.storageDriver.solewriter"]
    with pytest.raises(ConfigError) as exc:
        _config(solewriter="sometimes")
    assert exc.value.path == "storage.storageDriver.solewriter"
