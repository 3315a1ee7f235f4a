"""zot's s3 storageDriver keys: case-insensitive, AWS environment fallback, the doubled prefix."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import pytest

from ocireg.config import Config, build_config
from ocireg.errors import ConfigError
from ocireg.server.services import sole_sqlite_writer
from ocireg.storage.s3 import S3Settings
from ocireg.storage.s3.client import new_object_args
from ocireg.storage.s3.presign import Presigner


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


# --- distribution's write parameters (settings/s3writes.py) ------------------------------


def _s3(warnings: list[str] | None = None, notices: list[str] | None = None, **keys: Any) -> Any:
    return S3Settings.from_map({"bucket": "b", **keys}, warnings=warnings, notices=notices)


def test_by_default_objects_are_written_as_before_the_keys_were_read() -> None:
    s = _s3()
    assert new_object_args(s) == {}  # no encryption, class or ACL asked for
    assert (s.chunksize, s.multipartcopythresholdsize) == (6 << 20, 5 << 30)
    assert (s.multipartcopychunksize, s.multipartcopymaxconcurrency) == (1 << 30, 4)
    assert (s.useragent, s.usedualstack, s.accelerate) == (None, False, False)


def test_encrypt_is_sse_s3_and_with_keyid_sse_kms() -> None:
    assert new_object_args(_s3(encrypt=True)) == {"ServerSideEncryption": "AES256"}
    assert new_object_args(_s3(Encrypt="true", KeyID="arn:aws:kms:k")) == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "arn:aws:kms:k",
    }
    with pytest.raises(ConfigError) as exc:
        _s3(encrypt="yes please")
    assert exc.value.path == "storage.storageDriver.encrypt"


def test_keyid_without_encrypt_is_ignored_and_said_so() -> None:
    """distribution documents keyid as ignored unless encrypt is true."""
    notices: list[str] = []
    s = _s3(notices=notices, keyid="k")
    assert s.keyid is None and new_object_args(s) == {}
    assert [n.split(":")[0] for n in notices] == ["storage.storageDriver.keyid"]
    config = build_config(
        {
            "storage": {
                "rootDirectory": "/r",
                "storageDriver": {"name": "s3", "bucket": "b", "keyid": "k", "encrypt": False},
            }
        }
    )
    assert [n.split(":")[0] for n in config.notices] == ["storage.storageDriver.keyid"]


@pytest.mark.parametrize(
    ("value", "sent"),
    [("STANDARD_IA", "STANDARD_IA"), ("reduced_redundancy", "REDUCED_REDUNDANCY"), ("NONE", None)],
)
def test_storage_class_in_any_case_and_none_sends_none(value: str, sent: str | None) -> None:
    assert new_object_args(_s3(storageclass=value)).get("StorageClass") == sent


@pytest.mark.parametrize("value", ["GLACIER", "DEEP_ARCHIVE", "standard-ia", 3, ""])
def test_a_storage_class_objects_cannot_be_read_from_at_once_is_an_error(value: Any) -> None:
    with pytest.raises(ConfigError) as exc:
        _s3(StorageClass=value)
    assert exc.value.path == "storage.storageDriver.storageclass"
    assert "STANDARD_IA" in str(exc.value)


def test_object_acl_is_a_canned_acl_spelled_as_s3_does() -> None:
    assert new_object_args(_s3(objectacl="bucket-owner-full-control")) == {
        "ACL": "bucket-owner-full-control"
    }
    for bad in ("Private", "log-delivery-write", "none"):
        with pytest.raises(ConfigError) as exc:
            _s3(objectacl=bad)
        assert exc.value.path == "storage.storageDriver.objectacl"


def test_all_of_them_together() -> None:
    s = _s3(encrypt=True, keyid="k", storageclass="onezone_ia", objectacl="private")
    assert new_object_args(s) == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "k",
        "StorageClass": "ONEZONE_IA",
        "ACL": "private",
    }


@pytest.mark.parametrize(
    ("key", "value", "read"),
    [
        ("chunksize", 5 << 20, 5 << 20),  # S3's least part
        ("chunksize", "10485760", 10 << 20),  # strings too, as distribution
        ("chunksize", 5 << 30, 5 << 30),
        ("multipartcopychunksize", 32 << 20, 32 << 20),
        ("multipartcopythresholdsize", 0, 0),  # every copy in parts
        ("multipartcopythresholdsize", 5 << 30, 5 << 30),
        ("multipartcopymaxconcurrency", 100, 100),
    ],
)
def test_sizes_within_distributions_ranges(key: str, value: Any, read: int) -> None:
    assert getattr(_s3(**{key: value}), key) == read


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("chunksize", (5 << 20) - 1),  # below S3's least part
        ("chunksize", (5 << 30) + 1),  # above S3's largest part
        ("chunksize", "10MiB"),
        ("multipartcopychunksize", 1 << 20),
        ("multipartcopythresholdsize", -1),
        ("multipartcopythresholdsize", 6 << 30),  # above CopyObject's 5 GiB
        ("multipartcopymaxconcurrency", 0),
        ("multipartcopymaxconcurrency", True),
    ],
)
def test_sizes_outside_distributions_ranges_are_errors(key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as exc:
        _s3(**{key: value})
    assert exc.value.path == f"storage.storageDriver.{key}"


def test_v4auth_false_and_loglevel_are_warned_v4auth_true_is_what_ocireg_does() -> None:
    warnings: list[str] = []
    _s3(warnings, v4auth=True)
    _s3(warnings, v4auth="true")
    assert warnings == []
    _s3(warnings, v4auth=False)
    _s3(warnings, LogLevel="debug")
    assert warnings == ["storage.storageDriver.v4auth", "storage.storageDriver.loglevel"]


def test_accelerate_and_dualstack_pick_aws_endpoints_only_without_regionendpoint() -> None:
    notices: list[str] = []
    s = _s3(
        notices=notices, accelerate=True, usedualstack="true", regionendpoint="http://minio:9000"
    )
    assert (s.accelerate, s.usedualstack) == (False, False)
    assert sorted(n.split(":")[0] for n in notices) == [
        "storage.storageDriver.accelerate",
        "storage.storageDriver.usedualstack",
    ]
    notices.clear()
    s = _s3(notices=notices, accelerate=True, usedualstack=True, region="eu-west-1")
    assert (s.accelerate, s.usedualstack) == (True, True) and notices == []


@pytest.mark.parametrize(
    ("keys", "host"),
    [
        ({"accelerate": True}, "bucket.s3-accelerate.amazonaws.com"),
        ({"usedualstack": True}, "bucket.s3.dualstack.eu-west-1.amazonaws.com"),
        (
            {"accelerate": True, "usedualstack": True},
            "bucket.s3-accelerate.dualstack.amazonaws.com",
        ),
        ({}, "bucket.s3.amazonaws.com"),  # botocore's address for a presigned URL
        # Path-style addresses give way to acceleration, as in distribution's SDK.
        ({"accelerate": True, "forcepathstyle": True}, "bucket.s3-accelerate.amazonaws.com"),
        # A redirect endpoint of one's own is taken as it is (botocore would refuse it with
        # acceleration).
        ({"accelerate": True, "redirectendpoint": "https://cdn.example"}, "cdn.example"),
    ],
)
def test_redirect_urls_use_the_endpoint_variant(keys: dict[str, Any], host: str) -> None:
    """Signing needs no request: botocore itself builds the URL from these settings."""
    settings = _s3(region="eu-west-1", accesskey="a", secretkey="s", **keys)

    async def sign() -> str:
        presigner = Presigner(settings)
        try:
            return await presigner.get_url("bucket", "k")
        finally:
            await presigner.close()

    url = asyncio.run(sign())
    assert urlsplit(url).hostname == host, url
