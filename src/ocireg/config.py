"""Configuration: zot's file format (JSON or YAML, zot's keys, case-insensitive keys).

`load_config(path)` returns a typed `Config` or raises `ConfigError` naming the key path,
the value and what was expected. Keys that zot knows and ocireg does not implement yet are
accepted and reported once as warnings; keys that neither knows are errors, as in zot.

Two passes, both inside `load_config`: `SCHEMA` checks the fixed sections and gives keys
their canonical names; then each parser of `SECTIONS` types one free-form section (auth,
extensions, the storage and cache drivers; modules of `ocireg.settings`). Nothing reads
the raw file after that: consumers take `config.auth`, `config.metrics`, `config.s3`...
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ocireg.errors import ConfigError
from ocireg.settings.auth import AuthSettings, parse_auth
from ocireg.settings.drivers import (
    RedisSettings,
    S3Settings,
    parse_cache_driver,
    parse_driver_map,
    parse_storage_driver,
    remote_cache,
    s3_dedupe_notice,
)
from ocireg.settings.events import EventsSettings, parse_events
from ocireg.settings.extensions import (
    LintSettings,
    MetricsSettings,
    ScrubSettings,
    SearchSettings,
    UISettings,
    parse_lint,
    parse_metrics,
    parse_scrub,
    parse_search,
    parse_ui,
)
from ocireg.settings.keys import (
    Context,
    canonical_keys,
    integer,
    parse_duration,
    resolve_path,
)
from ocireg.settings.retention import RetentionSettings, parse_retention
from ocireg.settings.subpaths import SubPath, parse_sub_paths
from ocireg.settings.windows import TimeWindow, parse_window
from ocireg.sync.settings import SyncSettings, parse_sync

# --- schema -------------------------------------------------------------------------------
# A schema node is: a Python type or tuple of types (a leaf), a dict of canonical key ->
# node (a section), FREE (a map whose keys are data, e.g. repository globs), or UNIMPLEMENTED
# (zot knows it; ocireg accepts it with a warning).


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


FREE = _Marker("FREE")
# An extension's own map, checked by the module that implements it; present but empty (a
# YAML section with nothing under it is null) enables the extension, as in zot.
EXTENSION = _Marker("EXTENSION")
UNIMPLEMENTED = _Marker("UNIMPLEMENTED")
IGNORED = _Marker("IGNORED")  # zot build metadata that has no meaning for a server

_TLS = {"cert": str, "key": str, "cacert": str}
_DURATION = (str, int, float)

SCHEMA: dict[str, Any] = {
    "distSpecVersion": str,
    "goVersion": IGNORED,
    "commit": IGNORED,
    "releaseTag": IGNORED,
    "binaryType": IGNORED,
    "storage": {
        "rootDirectory": str,
        "commit": bool,
        "dedupe": bool,
        "gc": bool,
        "gcDelay": _DURATION,
        "gcInterval": _DURATION,
        "gcReferrers": UNIMPLEMENTED,
        "untaggedImageRetentionDelay": UNIMPLEMENTED,
        "retention": FREE,
        "remoteCache": bool,
        "redirectBlobURL": bool,
        "storageDriver": FREE,
        "cacheDriver": FREE,
        "subPaths": FREE,
        "maxRepos": (int, str),
        "gcTimeWindow": str,
        "fastRestart": UNIMPLEMENTED,
    },
    "http": {
        "address": str,
        "port": (str, int),
        "workers": int,
        "externalUrl": str,  # read with http.auth.openid (settings/openid.py)
        "realm": str,
        "allowOrigin": str,
        "readTimeout": UNIMPLEMENTED,
        "writeTimeout": UNIMPLEMENTED,
        "compat": UNIMPLEMENTED,
        "tls": _TLS,
        "auth": FREE,
        "accessControl": FREE,
        "ratelimit": {"rate": int, "methods": list},
        # ocireg's own (zot has no equivalent): limits on what a slow client can hold.
        "bodyIdleTimeout": _DURATION,
        "manifestBodyBudget": int,
    },
    "log": {"level": str, "output": str, "audit": str},
    "extensions": {
        "metrics": EXTENSION,
        "scrub": EXTENSION,
        "sync": EXTENSION,
        "search": EXTENSION,
        "lint": EXTENSION,
        "trust": UNIMPLEMENTED,
        "ui": EXTENSION,
        # zot v2.1.20 reads it and does nothing with it: its mgmt endpoint is routed with
        # extensions.search (api/mgmt.py), here too
        "mgmt": EXTENSION,
        "imagetrust": UNIMPLEMENTED,
        "apikey": UNIMPLEMENTED,
        "events": EXTENSION,
    },
    "scheduler": UNIMPLEMENTED,
    # sharedStorage and routing are ocireg's keys (docs/cluster.md)
    "cluster": {
        "members": list,
        "hashKey": str,
        "tls": _TLS,
        "sharedStorage": (str, bool),
        "routing": str,
    },
}

LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "panic", "fatal")


def _normalise(node: Any, schema: Any, path: str, warnings: list[str]) -> Any:
    """Check `node` against `schema`; return it with canonical key names."""
    if schema is EXTENSION and node is None:
        return {}
    if schema is FREE or schema is EXTENSION:
        if not isinstance(node, dict):
            raise ConfigError(path, f"expected a map, got {type(node).__name__} {node!r}")
        return node
    if schema is UNIMPLEMENTED:
        warnings.append(path)
        return node
    if schema is IGNORED:
        return node
    if isinstance(schema, dict):
        if not isinstance(node, dict):
            raise ConfigError(path, f"expected a map, got {type(node).__name__} {node!r}")
        by_lower = {k.lower(): k for k in schema}
        out: dict[str, Any] = {}
        for key, value in node.items():
            canonical = by_lower.get(str(key).lower())
            where = f"{path}.{key}" if path else str(key)
            if canonical is None:
                known = ", ".join(sorted(schema))
                raise ConfigError(where, f"unknown key (known here: {known})")
            if canonical in out:  # as in the free-form sections (settings.keys.lower_keys)
                raise ConfigError(where, "duplicate key (keys are case-insensitive)")
            out[canonical] = _normalise(value, schema[canonical], where, warnings)
        return out
    types = schema if isinstance(schema, tuple) else (schema,)
    # bool is an int in Python; a number where a flag is expected (or the reverse) is a typo.
    if isinstance(node, bool) and bool not in types:
        raise ConfigError(path, f"expected {_type_names(types)}, got boolean {node!r}")
    if not isinstance(node, types):
        raise ConfigError(
            path, f"expected {_type_names(types)}, got {type(node).__name__} {node!r}"
        )
    return node


def _type_names(types: tuple[type, ...]) -> str:
    names = {
        str: "a string",
        int: "an integer",
        bool: "true or false",
        float: "a number",
        list: "a list",
        dict: "a map",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


# --- typed config -------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSConfig:
    cert: Path
    key: Path
    cacert: Path | None = None


@dataclass(frozen=True)
class ClientTLSConfig:
    """`cluster.tls`, the client side of member-to-member HTTPS: every key optional, as in
    zot (its scale-out examples give only `cacert`); `cert` and `key` come together."""

    cert: Path | None = None
    key: Path | None = None
    cacert: Path | None = None


@dataclass(frozen=True)
class StorageConfig:
    root_directory: Path
    commit: bool = False
    gc: bool = True
    gc_delay: float = 3600.0
    gc_interval: float = 3600.0
    remote_cache: bool = False
    # zot's: unranged blob GETs answer 307 to a presigned URL of the object (S3 only)
    redirect_blob_url: bool = False
    # zot's: an upload of bytes another repository holds becomes a hard link (local storage)
    dedupe: bool = True
    # zot's: the daily UTC window in which a periodic GC run may start (settings/windows.py)
    gc_time_window: TimeWindow | None = None
    # zot's: at most this many repositories hold manifests (registry/quota.py); 0: no quota
    max_repos: int = 0


@dataclass(frozen=True)
class RateLimitConfig:
    """zot's `http.ratelimit`: requests per second per client address, for every request
    (`rate`) and for each method named (`methods`)."""

    rate: int | None = None
    methods: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class HTTPConfig:
    address: str = "127.0.0.1"
    port: int = 5000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    realm: str = "ocireg"
    tls: TLSConfig | None = None
    body_idle_timeout: float = 60.0  # seconds without a body byte; 0: wait forever
    manifest_body_budget: int = 64 << 20  # bytes of manifest bodies held per worker
    # CORS: the origins (comma-separated) whose pages may call the API; "" is any, as in zot
    allow_origin: str = ""
    rate_limit: RateLimitConfig | None = None


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    output: Path | None = None
    audit: Path | None = None  # zot's audit log: changes made, and by whom


@dataclass(frozen=True)
class ClusterConfig:
    members: tuple[str, ...]
    hash_key: bytes
    tls: ClientTLSConfig | None = None
    # None: find out at run time which members share this member's storage (heartbeat
    # records); True: every member does (zot members write no records); False: none does.
    shared_storage: bool | None = None
    routing: str = "modulo"  # or "rendezvous"


@dataclass(frozen=True)
class Config:
    storage: StorageConfig
    http: HTTPConfig = field(default_factory=HTTPConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cluster: ClusterConfig | None = None
    # the free-form sections, typed by their `SECTIONS` parser
    auth: AuthSettings = field(default_factory=AuthSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    scrub: ScrubSettings = field(default_factory=ScrubSettings)
    s3: S3Settings | None = None  # None: the filesystem driver
    redis: RedisSettings | None = None  # None: the embedded sqlite metadata store
    sync: SyncSettings = field(default_factory=SyncSettings)
    search: SearchSettings = field(default_factory=SearchSettings)
    ui: UISettings = field(default_factory=UISettings)
    lint: LintSettings = field(default_factory=LintSettings)
    events: EventsSettings = field(default_factory=EventsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    sub_paths: tuple[SubPath, ...] = ()
    dist_spec_version: str = "1.1.1"
    source: Path | None = None
    # The zot keys accepted and not implemented (key paths), and the other things worth a
    # warning (sentences); both are printed by `ocireg verify` and logged by `serve`.
    warnings: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()

    @property
    def storage_driver(self) -> str:
        """The name of the storage driver (`storage.storageDriver.name`)."""
        return "filesystem" if self.s3 is None else "s3"

    @property
    def cache_driver(self) -> str:
        """The name of the metadata store (`storage.cacheDriver.name` when remoteCache)."""
        return "sqlite" if self.redis is None else "redis"


# The free-form sections: Config field -> the parser that types it (and the keys it reads).
SECTIONS: dict[str, Callable[[Context], Any]] = {
    "auth": parse_auth,  # http.auth, http.accessControl, http.realm
    "metrics": parse_metrics,  # extensions.metrics
    "scrub": parse_scrub,  # extensions.scrub
    "s3": parse_storage_driver,  # storage.storageDriver
    "redis": parse_cache_driver,  # storage.cacheDriver, storage.remoteCache
    "sync": parse_sync,  # extensions.sync
    "search": parse_search,  # extensions.search
    "ui": parse_ui,  # extensions.ui (needs extensions.search)
    "lint": parse_lint,  # extensions.lint
    "events": parse_events,  # extensions.events
    "retention": parse_retention,  # storage.retention
    "sub_paths": parse_sub_paths,  # storage.subPaths
}


DEFAULT_CONFIG: dict[str, Any] = {
    "distSpecVersion": "1.1.1",
    "storage": {"rootDirectory": "./data"},
    "http": {"address": "127.0.0.1", "port": "5000"},
    "log": {"level": "info"},
}


def read_config_file(path: Path) -> dict[str, Any]:
    """Parse a JSON or YAML file (by content: JSON is valid YAML, YAML errors say where)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError("", f"cannot read config file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:  # saved in another encoding (a Latin-1 comment)
        raise ConfigError("", f"{path} is not UTF-8: {exc}") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError("", f"{path} is not valid JSON/YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: the top level must be a map")
    return data


def load_config(path: Path | None) -> Config:
    """Load, validate and type a config file; None means the embedded default."""
    raw = DEFAULT_CONFIG if path is None else read_config_file(path)
    # Relative paths are relative to the working directory, as zot reads them.
    return build_config(raw, source=path, base=Path.cwd())


def build_config(
    raw: dict[str, Any], source: Path | None = None, base: Path | None = None
) -> Config:
    warnings: list[str] = []
    data = _normalise(raw, SCHEMA, "", warnings)
    base = base or Path.cwd()

    storage_raw = data.get("storage") or {}
    early_notices: list[str] = []
    storage = StorageConfig(
        root_directory=_root_directory(storage_raw, base, early_notices),
        commit=storage_raw.get("commit", False),
        gc=storage_raw.get("gc", True),
        gc_delay=parse_duration(storage_raw.get("gcDelay", "1h"), "storage.gcDelay"),
        # zot's default: collect every hour while gc is on.
        gc_interval=parse_duration(
            storage_raw.get("gcInterval", "1h" if storage_raw.get("gc", True) else 0),
            "storage.gcInterval",
        ),
        remote_cache=remote_cache(storage_raw),
        redirect_blob_url=storage_raw.get("redirectBlobURL", False),
        dedupe=storage_raw.get("dedupe", True),
        gc_time_window=parse_window(storage_raw.get("gcTimeWindow", ""), "storage.gcTimeWindow"),
        max_repos=max(0, integer(storage_raw.get("maxRepos", 0), "storage.maxRepos")),
    )

    http_raw = data.get("http", {})
    http = HTTPConfig(
        address=http_raw.get("address", "127.0.0.1"),
        port=_port(http_raw.get("port", 5000)),
        workers=_positive(http_raw.get("workers", os.cpu_count() or 1), "http.workers"),
        realm=http_raw.get("realm", "ocireg"),
        allow_origin=http_raw.get("allowOrigin", ""),
        rate_limit=_rate_limit(http_raw.get("ratelimit")),
        tls=_tls(http_raw.get("tls"), "http.tls", base),
        body_idle_timeout=parse_duration(
            http_raw.get("bodyIdleTimeout", "60s"), "http.bodyIdleTimeout"
        ),
        manifest_body_budget=_positive(
            http_raw.get("manifestBodyBudget", 64 << 20), "http.manifestBodyBudget"
        ),
    )

    log_raw = data.get("log", {})
    level = log_raw.get("level", "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError("log.level", f"expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    output = log_raw.get("output")
    audit = log_raw.get("audit")
    log = LogConfig(
        level=level,
        output=resolve_path(output, base) if output else None,
        audit=resolve_path(audit, base) if audit else None,
    )

    cluster = _cluster(data.get("cluster"), base)
    context = Context(data, base, warnings)
    sections = {name: parse(context) for name, parse in SECTIONS.items()}
    s3 = sections["s3"]
    notices = early_notices + context.notices + bare_durations(data, "")
    if s3 is not None and storage_raw.get("dedupe"):
        notices.append(s3_dedupe_notice("storage.dedupe"))
    if sections["auth"].openid is not None and not sections["ui"].enabled:
        # the login routes are served with the web pages (ocireg.ui.openid)
        notices.append("http.auth.openid: no logins without extensions.ui (the web pages)")
    if cluster is not None and s3 is not None and sections["redis"] is None:
        if s3.solewriter:
            notices.append(
                "storage.storageDriver.solewriter: ignored in a cluster (each member has a"
                " sqlite file of its own; Redis gives every member reads without S3 requests)"
            )
        if sections["retention"].on_pulls:
            notices.append(
                "storage.retention: the rules on pulls keep every tag they cover here (on S3"
                " each member notes the pulls it serves in a sqlite file of its own; Redis"
                " gives the owner all of them)"
            )
    return Config(
        storage=storage,
        http=http,
        log=log,
        cluster=cluster,
        dist_spec_version=data.get("distSpecVersion", "1.1.1"),
        source=source,
        warnings=tuple(warnings),
        notices=tuple(notices),
        **sections,
    )


# The keys read as Go durations (lower-cased): storage, http, extensions.scrub, sync.
_DURATION_KEYS = frozenset(
    {
        "gcdelay",
        "gcinterval",
        "bodyidletimeout",
        "interval",
        "pollinterval",
        "retrydelay",
        "maxretrydelay",
        "synctimeout",
        "manifestcheckinterval",
        "delay",
        "pulledwithin",
        "pushedwithin",
    }
)


def bare_durations(node: Any, where: str) -> list[str]:
    """A notice for each duration written as a bare number: Go, and so zot and ocireg,
    read it as nanoseconds, which is rarely what was meant (`"gcDelay": 3600` is 3.6 us).
    The Redis options are not among these keys: they read a bare number as seconds."""
    if isinstance(node, list):
        return [n for i, item in enumerate(node) for n in bare_durations(item, f"{where}[{i}]")]
    if not isinstance(node, dict):
        return []
    found: list[str] = []
    for key, value in node.items():
        path = f"{where}.{key}" if where else str(key)
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        if str(key).lower() in _DURATION_KEYS and is_number and value:
            found.append(
                f"{path}: the bare number {value!r} is read as nanoseconds, as zot reads it;"
                f' write a unit, e.g. "{value}s" or "{value}m"'
            )
        else:
            found += bare_durations(value, path)
    return found


def _root_directory(storage: dict[str, Any], base: Path, notices: list[str]) -> Path:
    """`storage.rootDirectory`: the repositories' directory on local disk; on S3, where
    the embedded metadata store's file and the instance's own files are (the workers'
    repository locks, the hop proofs of a cluster, the maintenance lock and checkpoints).

    zot's `verify` lets S3 with a remote cache leave it out (its `serve` then stops: "no
    storage config provided"). ocireg serves such a config: nothing of the registry's data
    is local there, and the instance's own files go to a directory of the system's
    temporary folder named after the user and the bucket's prefix, which two instances on
    one machine for the same storage share, as they would share one given."""
    if "rootDirectory" in storage:
        return resolve_path(storage["rootDirectory"], base)
    where = "storage.rootDirectory"
    s3 = parse_driver_map(storage.get("storageDriver"), "storage.storageDriver")
    if s3 is None:
        raise ConfigError(where, "required: the directory that holds the repositories")
    if not remote_cache(storage) or not storage.get("cacheDriver"):
        raise ConfigError(
            where, "required on S3 without a remote cache: the metadata store's file is there"
        )
    digest = hashlib.sha256(s3.location.encode()).hexdigest()[:12]
    root = Path(tempfile.gettempdir()) / f"ocireg-{os.getuid()}-{digest}"
    # The name is predictable in a folder every user writes: one made by another user
    # (who could then hold our locks) is refused rather than used. It is made here, ours
    # alone, so that no other user can make it between this check and its first use.
    try:
        root.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(where, f"absent, and {root} cannot be made: {exc.strerror}") from None
    info = root.lstat()
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode) or info.st_mode & 0o022:
        raise ConfigError(
            where, f"absent, and {root} is not a directory of this user's alone: give one"
        )
    notices.append(
        f"{where}: absent; this instance's own files (locks, checkpoints) are kept in {root}"
    )
    return root


def _rate_limit(raw: dict[str, Any] | None) -> RateLimitConfig | None:
    if raw is None:
        return None
    rate = raw.get("rate")
    if rate is not None:
        rate = _positive(rate, "http.ratelimit.rate")
    methods: list[tuple[str, int]] = []
    for n, entry in enumerate(raw.get("methods") or []):
        where = f"http.ratelimit.methods[{n}]"
        keys = canonical_keys(entry, ("method", "rate"), where)
        method = keys.get("method")
        if not isinstance(method, str) or not method.isalpha():
            raise ConfigError(f"{where}.method", f"expected an HTTP method, got {method!r}")
        per_second = keys.get("rate")
        if not isinstance(per_second, int) or isinstance(per_second, bool):
            raise ConfigError(f"{where}.rate", f"expected requests per second, got {per_second!r}")
        methods.append((method.upper(), _positive(per_second, f"{where}.rate")))
    return RateLimitConfig(rate=rate, methods=tuple(methods))


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError("http.port", f"expected a port number, got {value!r}") from None
    if not 0 < port < 65536:
        raise ConfigError("http.port", f"expected 1-65535, got {port}")
    return port


def _positive(value: int, path: str) -> int:
    if value < 1:
        raise ConfigError(path, f"expected a positive integer, got {value}")
    return value


def _tls(raw: dict[str, Any] | None, path: str, base: Path) -> TLSConfig | None:
    if not raw:
        return None
    for key in ("cert", "key"):
        if not raw.get(key):
            raise ConfigError(f"{path}.{key}", "required when the tls section is present")
    cacert = raw.get("cacert")
    return TLSConfig(
        cert=resolve_path(raw["cert"], base),
        key=resolve_path(raw["key"], base),
        cacert=resolve_path(cacert, base) if cacert else None,
    )


def _client_tls(raw: dict[str, Any] | None, path: str, base: Path) -> ClientTLSConfig | None:
    if not raw:
        return None
    if bool(raw.get("cert")) != bool(raw.get("key")):
        missing = "key" if raw.get("cert") else "cert"
        raise ConfigError(f"{path}.{missing}", "required with the other of cert and key")
    paths = {k: resolve_path(raw[k], base) if raw.get(k) else None for k in _TLS}
    return ClientTLSConfig(**paths)


def _cluster(raw: dict[str, Any] | None, base: Path) -> ClusterConfig | None:
    if not raw:
        return None
    members = raw.get("members")
    if not members or not all(isinstance(m, str) and m for m in members):
        raise ConfigError(
            "cluster.members", f"expected a list of 'host:port' strings, got {members!r}"
        )
    for i, member in enumerate(members):
        host, sep, port = member.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"cluster.members[{i}]", f"expected 'host:port', got {member!r}")
    key = raw.get("hashKey", "")
    key_bytes = key.encode()
    if len(key_bytes) != 16:
        raise ConfigError("cluster.hashKey", f"must be exactly 16 bytes, got {len(key_bytes)}")
    shared = raw.get("sharedStorage", "auto")
    if shared not in (True, False, "auto"):
        expected = 'expected true, false or "auto"'
        raise ConfigError("cluster.sharedStorage", f"{expected}, got {shared!r}")
    return ClusterConfig(
        members=tuple(members),
        hash_key=key_bytes,
        tls=_client_tls(raw.get("tls"), "cluster.tls", base),
        shared_storage=None if shared == "auto" else shared,
        routing=_routing(raw.get("routing", "modulo")),
    )


def _routing(value: str) -> str:
    if value not in ("modulo", "rendezvous"):
        raise ConfigError("cluster.routing", f'expected "modulo" or "rendezvous", got {value!r}')
    return value
