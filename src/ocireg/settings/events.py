"""`extensions.events` (zot's): where the registry's events go, as CloudEvents.

zot's keys, matched case-insensitively: `enable`, and `sinks`, each with `type` (`http` or
`nats`), `address`, `channel` (for HTTP the CloudEvents extension attribute `channel`, for
NATS the subject, required), `timeout` (30s), `headers` and `proxy` (HTTP), `credentials`
(`username` and `password`: HTTP basic or NATS user; `token`: HTTP bearer; `file`: a NATS
credentials file) and `tlsconfig` (`cacertfile`, `certfile`, `keyfile`). A section that is
present enables the extension unless `enable` is false, as the other extensions here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ocireg.errors import ConfigError
from ocireg.settings.keys import (
    Context,
    boolean,
    check_keys,
    join,
    lower_keys,
    parse_duration,
    resolve_path,
)

DEFAULT_TIMEOUT = 30.0  # seconds, zot's


@dataclass(frozen=True)
class SinkSettings:
    kind: str  # "http" or "nats"
    address: str
    channel: str = ""
    timeout: float = DEFAULT_TIMEOUT
    headers: tuple[tuple[str, str], ...] = ()
    proxy: str = ""
    username: str = ""
    password: str = ""
    token: str = ""
    credentials_file: Path | None = None  # NATS
    ca_cert: Path | None = None
    cert: Path | None = None
    key: Path | None = None


@dataclass(frozen=True)
class EventsSettings:
    sinks: tuple[SinkSettings, ...] = ()  # empty: no events


def parse_events(ctx: Context) -> EventsSettings:
    where = "extensions.events"
    if not ctx.has(where):
        return EventsSettings()
    raw = lower_keys(ctx.get(where) or {}, where)
    check_keys(raw, ("enable", "sinks"), where)
    if not boolean(raw.get("enable", True), f"{where}.enable"):
        return EventsSettings()
    listed = raw.get("sinks") or []
    if not isinstance(listed, list):
        raise ConfigError(f"{where}.sinks", f"expected a list of sinks, got {listed!r}")
    sinks = []
    for n, node in enumerate(listed):
        sinks.append(_sink(ctx, lower_keys(node, f"{where}.sinks[{n}]"), f"{where}.sinks[{n}]"))
    return EventsSettings(tuple(sinks))


def _sink(ctx: Context, raw: dict[str, Any], where: str) -> SinkSettings:
    check_keys(
        raw,
        (
            "type",
            "address",
            "channel",
            "timeout",
            "headers",
            "proxy",
            "credentials",
            "tlsconfig",
        ),
        where,
    )
    kind = raw.get("type")
    schemes = {"http": ("http://", "https://"), "nats": ("nats://", "tls://")}.get(str(kind))
    if schemes is None:
        raise ConfigError(join(where, "type"), f"expected http or nats, got {kind!r}")
    address = raw.get("address")
    if not isinstance(address, str) or not address.startswith(schemes):
        raise ConfigError(join(where, "address"), f"expected a {kind} URL, got {address!r}")
    channel = _text(raw.get("channel"), join(where, "channel"))
    if kind == "nats" and not channel:
        raise ConfigError(join(where, "channel"), "a NATS sink needs its subject here")
    timeout = parse_duration(raw.get("timeout", "30s"), join(where, "timeout"))
    headers = raw.get("headers") or {}
    if not isinstance(headers, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
    ):
        raise ConfigError(join(where, "headers"), f"expected a map of strings, got {headers!r}")
    credentials = lower_keys(raw.get("credentials") or {}, join(where, "credentials"))
    check_keys(credentials, ("username", "password", "token", "file"), join(where, "credentials"))
    credentials_file = _text(credentials.get("file"), join(where, "credentials.file"))
    if credentials_file and kind != "nats":
        raise ConfigError(join(where, "credentials.file"), "only a NATS sink reads a file")
    tls = lower_keys(raw.get("tlsconfig") or {}, join(where, "tlsconfig"))
    check_keys(tls, ("cacertfile", "certfile", "keyfile"), join(where, "tlsconfig"))
    files: dict[str, Path | None] = {}
    for name in ("cacertfile", "certfile", "keyfile"):
        value = _text(tls.get(name), join(where, f"tlsconfig.{name}"))
        files[name] = resolve_path(value, ctx.base) if value else None
    if bool(files["certfile"]) != bool(files["keyfile"]):
        raise ConfigError(join(where, "tlsconfig"), "certFile and keyFile go together")
    return SinkSettings(
        kind=str(kind),
        address=address,
        channel=channel,
        timeout=timeout if timeout > 0 else DEFAULT_TIMEOUT,
        headers=tuple(headers.items()),
        proxy=_text(raw.get("proxy"), join(where, "proxy")),
        username=_text(credentials.get("username"), join(where, "credentials.username")),
        password=_text(credentials.get("password"), join(where, "credentials.password")),
        token=_text(credentials.get("token"), join(where, "credentials.token")),
        credentials_file=resolve_path(credentials_file, ctx.base) if credentials_file else None,
        ca_cert=files["cacertfile"],
        cert=files["certfile"],
        key=files["keyfile"],
    )


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ConfigError(where, f"expected a string, got {value!r}")
    return value
