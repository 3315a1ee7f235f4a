"""`storage.storageDriver` (filesystem | s3) and `storage.cacheDriver` (redis), zot's keys
matched case-insensitively. Keys of the Go drivers that ocireg does not implement are
warnings; any other key is an error."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ocireg.errors import ConfigError
from ocireg.settings import s3writes
from ocireg.settings.keys import (
    Context,
    boolean,
    check_keys,
    integer,
    lower_keys,
    parse_duration,
)

STORAGE_DRIVERS = ("filesystem", "s3")
CACHE_DRIVERS = ("sqlite", "redis")  # sqlite: the embedded default, never named in a file

# --- s3 ------------------------------------------------------------------------------------

_S3_KEYS = (
    "name",
    "rootdirectory",
    "bucket",
    "region",
    "regionendpoint",
    "secure",
    "skipverify",
    "forcepathstyle",
    "accesskey",
    "secretkey",
    "sessiontoken",
    "redirectendpoint",  # ours: where clients reach the bucket (storage.redirectBlobURL)
    "solewriter",  # ours: nothing else writes under this prefix (registry/versions.py)
    *s3writes.KEYS,  # distribution's, for how objects are written (`v4auth: false` warned)
)
# distribution's s3-aws parameters that ocireg has no use for: the Go SDK's log level.
_S3_UNIMPLEMENTED = ("loglevel",)
_FILESYSTEM_UNIMPLEMENTED = ("rootdirectory", "maxthreads")  # storage.rootDirectory decides
_S3_ENV = {
    "accesskey": "AWS_ACCESS_KEY_ID",
    "secretkey": "AWS_SECRET_ACCESS_KEY",
    "region": "AWS_REGION",
    "regionendpoint": "AWS_ENDPOINT_URL_S3",
    "sessiontoken": "AWS_SESSION_TOKEN",
}


@dataclass(frozen=True)
class S3Settings:
    """zot's `storage.storageDriver` keys for S3, with the AWS environment as fallback."""

    bucket: str
    rootdirectory: str = ""
    region: str = "us-east-1"
    regionendpoint: str | None = None
    secure: bool = True
    skipverify: bool = False
    accesskey: str | None = None
    secretkey: str | None = None
    sessiontoken: str | None = None
    forcepathstyle: bool = False
    # ours: the endpoint written into the presigned URLs of blob redirects, when clients
    # reach the bucket by another address than the registry does (None: regionendpoint)
    redirectendpoint: str | None = None
    # ours: this instance is the only writer of the bucket's prefix, so with the embedded
    # sqlite store its workers may keep and believe the index-version keys (docs/storage.md)
    solewriter: bool = False
    # distribution's, applied to every object written (`s3writes` reads them): server-side
    # encryption (SSE-S3; SSE-KMS with `keyid`), the storage class and canned ACL to send
    # (None: none sent), the part size of uploads, and the copies in parts.
    encrypt: bool = False
    keyid: str | None = None
    storageclass: str | None = None
    objectacl: str | None = None
    chunksize: int = s3writes.DEFAULT_CHUNK
    multipartcopythresholdsize: int = s3writes.DEFAULT_COPY_THRESHOLD
    multipartcopychunksize: int = s3writes.DEFAULT_COPY_CHUNK
    multipartcopymaxconcurrency: int = s3writes.DEFAULT_COPY_CONCURRENCY
    # ...and the client's: added to its User-Agent, and AWS's endpoint variants
    useragent: str | None = None
    usedualstack: bool = False
    accelerate: bool = False

    @classmethod
    def from_map(
        cls,
        raw: Any,
        where: str = "storage.storageDriver",
        warnings: list[str] | None = None,
        notices: list[str] | None = None,
    ) -> S3Settings:
        spec = lower_keys(raw, where)
        warnings = [] if warnings is None else warnings
        check_keys(spec, _S3_KEYS, where, _S3_UNIMPLEMENTED, warnings)
        for key, var in _S3_ENV.items():
            if not spec.get(key) and os.environ.get(var):
                spec[key] = os.environ[var]
        if not spec.get("region") and os.environ.get("AWS_DEFAULT_REGION"):
            spec["region"] = os.environ["AWS_DEFAULT_REGION"]
        if not spec.get("bucket"):
            raise ConfigError(f"{where}.bucket", "required for the s3 driver")
        flags: dict[str, Any] = {
            key: boolean(spec[key], f"{where}.{key}", strings=True)
            for key in ("secure", "skipverify", "forcepathstyle", "solewriter")
            if key in spec
        }
        return cls(
            bucket=str(spec["bucket"]),
            rootdirectory=str(spec.get("rootdirectory") or ""),
            region=str(spec.get("region") or "us-east-1"),
            regionendpoint=spec.get("regionendpoint") or None,
            accesskey=spec.get("accesskey") or None,
            secretkey=spec.get("secretkey") or None,
            sessiontoken=spec.get("sessiontoken") or None,
            redirectendpoint=spec.get("redirectendpoint") or None,
            **flags,
            **s3writes.write_options(spec, where, warnings, [] if notices is None else notices),
        )

    @property
    def endpoint(self) -> str | None:
        return self._with_scheme(self.regionendpoint)

    @property
    def redirect_endpoint(self) -> str | None:
        """The endpoint of presigned download URLs: `redirectendpoint`, else the driver's."""
        return self._with_scheme(self.redirectendpoint) or self.endpoint

    def _with_scheme(self, url: str | None) -> str | None:
        if url and "://" not in url:
            url = ("https://" if self.secure else "http://") + url
        return url

    @property
    def location(self) -> str:
        """Endpoint, bucket and key prefix, as one text (the endpoint AWS's when unset)."""
        return f"{self.endpoint or 's3'}/{self.bucket}/{self.prefix}"

    @property
    def prefix(self) -> str:
        """The bucket key prefix, rootdirectory doubled as zot does (with a trailing /)."""
        root = self.rootdirectory.strip("/")
        return f"{root}/{root}/" if root else ""


def s3_dedupe_notice(where: str) -> str:
    """The notice for `dedupe: true` on a storage on S3 (`where`: the key's path)."""
    return (
        f"{where}: on S3 ocireg keeps each repository's copy of a blob (zot leaves zero-byte"
        " stubs instead; ocireg reads them, and does not write them)"
    )


def parse_storage_driver(ctx: Context) -> S3Settings | None:
    """`storage.storageDriver`: None for the filesystem driver (the default)."""
    return parse_driver_map(
        ctx.get("storage.storageDriver"), "storage.storageDriver", ctx.warnings, ctx.notices
    )


def parse_driver_map(
    node: Any,
    where: str,
    warnings: list[str] | None = None,
    notices: list[str] | None = None,
) -> S3Settings | None:
    """A `storageDriver` map (the default storage's or a sub path's): None for the
    filesystem driver (also when absent)."""
    spec = lower_keys(node or {}, where)
    name = str(spec.get("name", "filesystem")).lower()
    if name == "s3":
        return S3Settings.from_map(spec, where, warnings, notices)
    if name == "filesystem":
        check_keys(
            spec, ("name",), where, _FILESYSTEM_UNIMPLEMENTED, [] if warnings is None else warnings
        )
        return None
    raise ConfigError(
        f"{where}.name", f"unknown driver {name!r} (known: {', '.join(STORAGE_DRIVERS)})"
    )


# --- redis ---------------------------------------------------------------------------------

# zot's option -> redis-py keyword and how to read it.
_REDIS_OPTIONS: dict[str, tuple[str, str]] = {
    "db": ("db", "int"),
    "username": ("username", "str"),
    "password": ("password", "str"),
    "client_name": ("client_name", "str"),
    "protocol": ("protocol", "int"),
    "dial_timeout": ("socket_connect_timeout", "duration"),
    "read_timeout": ("socket_timeout", "duration"),
    "pool_size": ("max_connections", "int"),
    "max_active_conns": ("max_connections", "int"),
}
# Sentinel (go-redis's failover client): with `master_name`, `addr` lists the sentinels.
_SENTINEL_KEYS = ("master_name", "sentinel_username", "sentinel_password")
# go-redis's retries of a command that met a network error: its defaults.
_RETRY_KEYS = ("max_retries", "min_retry_backoff", "max_retry_backoff")
GO_REDIS_RETRIES = 3
GO_REDIS_BACKOFF = (0.008, 0.512)  # seconds: the first wait, the longest
# go-redis options that zot passes on and ocireg does not.
_REDIS_UNIMPLEMENTED = (
    "write_timeout",
    "context_timeout_enabled",
    "pool_fifo",
    "pool_timeout",
    "min_idle_conns",
    "max_idle_conns",
    "conn_max_idle_time",
    "conn_max_lifetime",
    "max_redirects",
    "read_only",
    "route_by_latency",
    "route_randomly",
    "disable_identity",
    "identity_suffix",
    "unstable_resp3",
)
_REDIS_KEYS = ("name", "url", "addr", "keyprefix", *_REDIS_OPTIONS, *_SENTINEL_KEYS, *_RETRY_KEYS)
DEFAULT_REDIS_ADDR = "127.0.0.1:6379"


@dataclass(frozen=True)
class RedisRetries:
    """go-redis's `max_retries` (-1: none), `min_retry_backoff`, `max_retry_backoff`."""

    retries: int = GO_REDIS_RETRIES
    first: float = GO_REDIS_BACKOFF[0]
    longest: float = GO_REDIS_BACKOFF[1]


@dataclass(frozen=True)
class RedisSettings:
    """zot's redis `cacheDriver`: a URL, or addresses (several: Redis Cluster; with
    `master_name`: the Sentinels that name the master) + options."""

    url: str | None = None
    addrs: tuple[str, ...] = (DEFAULT_REDIS_ADDR,)
    # redis-py keywords from the options above; a URL carries its own and ignores them.
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    keyprefix: str = "zot"
    master_name: str | None = None  # Sentinel's name of the master set
    # `username`/`password` for the Sentinels themselves (zot's sentinel_* keys).
    sentinel_auth: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    retries: RedisRetries | None = None  # None: the client's own (redis-py's defaults)

    @classmethod
    def from_map(
        cls, raw: Any, where: str = "storage.cacheDriver", warnings: list[str] | None = None
    ) -> RedisSettings:
        spec = lower_keys(raw, where)
        check_keys(
            spec, _REDIS_KEYS, where, _REDIS_UNIMPLEMENTED, [] if warnings is None else warnings
        )
        options: dict[str, Any] = {}
        for key, (keyword, kind) in _REDIS_OPTIONS.items():
            if key not in spec:
                continue
            value, path = spec[key], f"{where}.{key}"
            if kind == "duration":
                options[keyword] = parse_duration(value, path, bare_unit=1.0)  # bare = seconds
            elif kind == "int":
                options[keyword] = integer(value, path)
            else:
                options[keyword] = str(value)
        master_name = str(spec["master_name"]) if spec.get("master_name") else None
        if master_name and spec.get("url"):
            # As zot: a URL gives a plain or a cluster client, never a Sentinel one.
            raise ConfigError(f"{where}.master_name", "Sentinel takes `addr`, not `url`")
        sentinel_auth = {
            keyword: str(spec[f"sentinel_{keyword}"])
            for keyword in ("username", "password")
            if spec.get(f"sentinel_{keyword}")
        }
        return cls(
            url=str(spec["url"]) if spec.get("url") else None,
            addrs=_addrs(spec.get("addr"), f"{where}.addr"),
            options=MappingProxyType(options),
            keyprefix=str(spec.get("keyprefix") or "zot"),
            master_name=master_name,
            sentinel_auth=MappingProxyType(sentinel_auth),
            retries=_retries(spec, where),
        )


def remote_cache(storage: Mapping[str, Any]) -> bool:
    """zot's `storage.remoteCache` of a `storage` map. When the key is absent zot turns it
    on for a storage on S3 with dedupe on (dedupe's default), whose cache must then be
    the remote one: a `cacheDriver` given is used without the key, as in zot."""
    if "remoteCache" in storage:
        return bool(storage["remoteCache"])
    driver = lower_keys(storage.get("storageDriver") or {}, "storage.storageDriver")
    on_s3 = str(driver.get("name", "")).lower() == "s3"
    return on_s3 and bool(storage.get("dedupe", True))


def parse_cache_driver(ctx: Context) -> RedisSettings | None:
    """`storage.cacheDriver`, read only when `storage.remoteCache` is on (as zot does,
    with zot's default for it: `remote_cache`); None for the embedded sqlite store."""
    where = "storage.cacheDriver"
    spec = lower_keys(ctx.get(where) or {}, where)
    if not remote_cache(ctx.get("storage") or {}) or not spec:
        return None
    name = str(spec.get("name", "")).lower()
    if name != "redis":
        raise ConfigError(
            f"{where}.name", f"unknown cache driver {name!r} (known: {', '.join(CACHE_DRIVERS)})"
        )
    return RedisSettings.from_map(spec, where, ctx.warnings)


def _retries(spec: Mapping[str, Any], where: str) -> RedisRetries | None:
    """go-redis's retry keys; None when none is given. As go-redis reads them: 0 (or
    absent) is its default, -1 is none (no retry, no wait)."""
    if not any(key in spec for key in _RETRY_KEYS):
        return None
    given = [
        (
            integer(spec[key], f"{where}.{key}")
            if key == "max_retries"
            else parse_duration(spec[key], f"{where}.{key}", bare_unit=1.0)
        )
        if key in spec
        else 0
        for key in _RETRY_KEYS
    ]
    defaults = (GO_REDIS_RETRIES, *GO_REDIS_BACKOFF)
    retries, first, longest = (
        default if value == 0 else max(value, 0)
        for value, default in zip(given, defaults, strict=True)
    )
    return RedisRetries(int(retries), first, max(first, longest))


def _addrs(value: Any, where: str) -> tuple[str, ...]:
    if not value:
        return (DEFAULT_REDIS_ADDR,)
    addrs = [value] if isinstance(value, str) else value
    if not isinstance(addrs, list) or not addrs:
        raise ConfigError(where, f"expected 'host:port' or a list of them, got {value!r}")
    for i, addr in enumerate(addrs):
        _, _, port = str(addr).rpartition(":")
        if port and not port.isdigit():
            raise ConfigError(f"{where}[{i}]", f"expected 'host:port', got {addr!r}")
    return tuple(str(a) for a in addrs)
