"""Configuration: zot's file format (JSON or YAML, zot's keys, case-insensitive keys).

`load_config(path)` returns a typed `Config` or raises `ConfigError` naming the key path,
the value and what was expected. Keys that zot knows and ocireg does not implement yet are
accepted and reported once as warnings; keys that neither knows are errors, as in zot.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ocireg.errors import ConfigError

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
        "dedupe": UNIMPLEMENTED,
        "gc": bool,
        "gcDelay": _DURATION,
        "gcInterval": _DURATION,
        "gcReferrers": UNIMPLEMENTED,
        "untaggedImageRetentionDelay": UNIMPLEMENTED,
        "retention": UNIMPLEMENTED,
        "remoteCache": bool,
        "storageDriver": FREE,
        "cacheDriver": FREE,
        "subPaths": UNIMPLEMENTED,
    },
    "http": {
        "address": str,
        "port": (str, int),
        "workers": int,
        "externalUrl": UNIMPLEMENTED,
        "realm": str,
        "allowOrigin": UNIMPLEMENTED,
        "compat": UNIMPLEMENTED,
        "tls": _TLS,
        "auth": FREE,
        "accessControl": FREE,
        "ratelimit": UNIMPLEMENTED,
    },
    "log": {"level": str, "output": str, "audit": UNIMPLEMENTED},
    "extensions": {
        "metrics": EXTENSION,
        "scrub": EXTENSION,
        "sync": EXTENSION,
        "search": UNIMPLEMENTED,
        "lint": UNIMPLEMENTED,
        "trust": UNIMPLEMENTED,
        "ui": UNIMPLEMENTED,
        "mgmt": UNIMPLEMENTED,
        "imagetrust": UNIMPLEMENTED,
        "apikey": UNIMPLEMENTED,
        "events": UNIMPLEMENTED,
    },
    "scheduler": UNIMPLEMENTED,
    "cluster": {"members": list, "hashKey": str, "tls": _TLS},
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


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any, path: str) -> float:
    """A Go duration ("1h", "90m", "1h30m0s") or a number of nanoseconds, in seconds."""
    if isinstance(value, bool):
        raise ConfigError(path, f"expected a duration like '1h' or '30m', got {value!r}")
    if isinstance(value, int | float):
        return float(value) / 1e9
    text = str(value).strip()
    if text in ("0", ""):
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ConfigError(path, f"expected a duration like '1h' or '30m', got {value!r}")
    return total


# --- typed config -------------------------------------------------------------------------


@dataclass(frozen=True)
class TLSConfig:
    cert: Path
    key: Path
    cacert: Path | None = None


@dataclass(frozen=True)
class StorageConfig:
    root_directory: Path
    commit: bool = False
    gc: bool = True
    gc_delay: float = 3600.0
    gc_interval: float = 3600.0
    remote_cache: bool = False
    storage_driver: dict[str, Any] | None = None
    cache_driver: dict[str, Any] | None = None


@dataclass(frozen=True)
class HTTPConfig:
    address: str = "127.0.0.1"
    port: int = 5000
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    realm: str = "ocireg"
    tls: TLSConfig | None = None
    auth: dict[str, Any] | None = None
    access_control: dict[str, Any] | None = None


@dataclass(frozen=True)
class LogConfig:
    level: str = "info"
    output: Path | None = None


@dataclass(frozen=True)
class ClusterConfig:
    members: tuple[str, ...]
    hash_key: bytes
    tls: TLSConfig | None = None


@dataclass(frozen=True)
class Config:
    storage: StorageConfig
    http: HTTPConfig = field(default_factory=HTTPConfig)
    log: LogConfig = field(default_factory=LogConfig)
    cluster: ClusterConfig | None = None
    extensions: dict[str, Any] = field(default_factory=dict)
    dist_spec_version: str = "1.1.1"
    source: Path | None = None
    warnings: tuple[str, ...] = ()


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

    storage_raw = data.get("storage")
    if not storage_raw or "rootDirectory" not in storage_raw:
        raise ConfigError(
            "storage.rootDirectory", "required: the directory that holds the repositories"
        )
    storage = StorageConfig(
        root_directory=_path(storage_raw["rootDirectory"], base),
        commit=storage_raw.get("commit", False),
        gc=storage_raw.get("gc", True),
        gc_delay=parse_duration(storage_raw.get("gcDelay", "1h"), "storage.gcDelay"),
        # zot's default: collect every hour while gc is on.
        gc_interval=parse_duration(
            storage_raw.get("gcInterval", "1h" if storage_raw.get("gc", True) else 0),
            "storage.gcInterval",
        ),
        remote_cache=storage_raw.get("remoteCache", False),
        storage_driver=storage_raw.get("storageDriver"),
        cache_driver=storage_raw.get("cacheDriver"),
    )

    http_raw = data.get("http", {})
    http = HTTPConfig(
        address=http_raw.get("address", "127.0.0.1"),
        port=_port(http_raw.get("port", 5000)),
        workers=_positive(http_raw.get("workers", os.cpu_count() or 1), "http.workers"),
        realm=http_raw.get("realm", "ocireg"),
        tls=_tls(http_raw.get("tls"), "http.tls", base),
        auth=http_raw.get("auth"),
        access_control=http_raw.get("accessControl"),
    )

    log_raw = data.get("log", {})
    level = log_raw.get("level", "info").lower()
    if level not in LOG_LEVELS:
        raise ConfigError("log.level", f"expected one of {', '.join(LOG_LEVELS)}, got {level!r}")
    output = log_raw.get("output")
    log = LogConfig(level=level, output=_path(output, base) if output else None)

    return Config(
        storage=storage,
        http=http,
        log=log,
        cluster=_cluster(data.get("cluster"), base),
        extensions=data.get("extensions", {}),
        dist_spec_version=data.get("distSpecVersion", "1.1.1"),
        source=source,
        warnings=tuple(warnings),
    )


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
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
        cert=_path(raw["cert"], base),
        key=_path(raw["key"], base),
        cacert=_path(cacert, base) if cacert else None,
    )


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
    return ClusterConfig(
        members=tuple(members), hash_key=key_bytes, tls=_tls(raw.get("tls"), "cluster.tls", base)
    )
